//! What a production review asks of deploy/: API-server egress limited to listed addresses
//! (never "443 to anywhere"), the image pinned by digest, the API token as a mounted Secret
//! file (never an environment variable), and the shutdown grace below the pod's
//! terminationGracePeriodSeconds.

use serde_json::Value;

fn manifest(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("a manifest");
    let doc = serde_yaml::Deserializer::from_str(&text)
        .next()
        .expect("one document");
    serde::Deserialize::deserialize(doc).expect("YAML")
}

fn ports(rule: &Value) -> Vec<u64> {
    rule["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["port"].as_u64())
        .collect()
}

#[test]
fn api_server_egress_goes_only_to_listed_addresses() {
    let np = manifest("60-networkpolicy.yaml");
    let egress = np["spec"]["egress"].as_array().expect("egress rules");
    let api_rules: Vec<&Value> = egress
        .iter()
        .filter(|r| ports(r).iter().any(|p| *p == 443 || *p == 6443))
        .collect();
    assert!(!api_rules.is_empty(), "no rule for the API server");
    for rule in api_rules {
        let to = rule["to"].as_array().cloned().unwrap_or_default();
        assert!(!to.is_empty(), "443/6443 to any address: {rule}");
        for peer in &to {
            let cidr = peer["ipBlock"]["cidr"].as_str().unwrap_or("");
            assert!(
                cidr.ends_with("/32") || cidr.ends_with("/128"),
                "the API server rule names a peer that is not one address: {peer}"
            );
        }
    }
}

#[test]
fn the_image_is_pinned_by_digest_and_the_token_is_a_mounted_secret_file() {
    let dep = manifest("30-deployment.yaml");
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let image = c["image"].as_str().unwrap_or("");
    let digest = image.split_once("@sha256:").map(|(_, d)| d).unwrap_or("");
    assert!(
        digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
        "the image is not pinned by digest: {image}"
    );
    for env in c["env"].as_array().into_iter().flatten() {
        assert!(
            env["valueFrom"]["secretKeyRef"].is_null(),
            "a secret in the environment: {env}"
        );
    }
    let args: Vec<&str> = c["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let at = args
        .iter()
        .position(|a| *a == "--token-file")
        .expect("--token-file in the args");
    let file = args.get(at + 1).expect("the token file");
    let mount = c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| {
            m["mountPath"]
                .as_str()
                .is_some_and(|p| file.starts_with(&format!("{p}/")))
        })
        .expect("the token file is on a mounted volume");
    let volume = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .expect("the mount's volume");
    assert_eq!(
        volume["secret"]["secretName"], "fleetdeck-token",
        "{volume}"
    );
}

#[test]
fn the_shutdown_grace_ends_before_the_kubelet_kills_the_pod() {
    let dep = manifest("30-deployment.yaml");
    let kill_after = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    let grace = fleetdeck::config::Config::default()
        .headless
        .shutdown_grace
        .as_secs();
    // Room for the timeline entries, the Lease's release and the HTTP server's stop.
    assert!(
        grace + 5 <= kill_after,
        "shutdown_grace {grace}s is too close to terminationGracePeriodSeconds {kill_after}"
    );
}
