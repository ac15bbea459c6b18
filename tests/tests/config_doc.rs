//! docs/config.md cannot drift from the code: for every table of the config, the parser's
//! own list of accepted keys (serde's "expected one of ...", provoked with an unknown key)
//! must be documented there.

use anyhow::{Context, Result};
use lb_tests::daemon::{lb, ConfigFile};

const BASE: &str = "[xdp]\ninterface = \"eth0\"\n";
const HTTP_SERVICE: &str =
    "[[service]]\nname = \"w\"\nvip = \"198.18.0.99\"\nport = 80\nmode = \"http\"\n";
const SERVER: &str = "[[service.server]]\nname = \"a\"\naddress = \"198.18.0.2:80\"\n";

/// The keys `lb check` says a table accepts, from a config with `zz_unknown` in it.
fn accepted_keys(config: &str) -> Result<Vec<String>> {
    let file = ConfigFile::new(config)?;
    let (status, _, err) = lb(&["check", "--config", file.path().to_str().context("utf-8")?])?;
    anyhow::ensure!(!status.success(), "unknown key accepted:\n{config}");
    let list = err
        .split("expected one of ")
        .nth(1)
        .or_else(|| err.split("expected ").nth(1))
        .with_context(|| format!("no key list in: {err}"))?;
    let list = list.split(" (did you mean").next().unwrap_or(list);
    Ok(list
        .split([',', ' '])
        .filter(|w| w.starts_with('`'))
        .filter_map(|k| {
            k.trim()
                .trim_matches('`')
                .split('`')
                .next()
                .map(str::to_string)
        })
        .filter(|k| !k.is_empty())
        .collect())
}

#[test]
fn every_config_key_is_documented() -> Result<()> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md"))?;
    let tables: Vec<(&str, String)> = vec![
        ("top level", format!("zz_unknown = 1\n{BASE}")),
        ("[xdp]", format!("{BASE}zz_unknown = 1\n")),
        ("[admin]", format!("{BASE}[admin]\nzz_unknown = 1\n")),
        ("[global]", format!("{BASE}[global]\nzz_unknown = 1\n")),
        ("[l4]", format!("{BASE}[l4]\nzz_unknown = 1\n")),
        ("[[service]]", format!("{BASE}{HTTP_SERVICE}zz_unknown = 1\n")),
        ("[service.http]", format!("{BASE}{HTTP_SERVICE}[service.http]\nzz_unknown = 1\n")),
        (
            "cookie",
            format!("{BASE}{HTTP_SERVICE}[service.http]\ncookie = {{ name = \"S\", mode = \"insert\", zz_unknown = 1 }}\n"),
        ),
        (
            "timeout",
            format!("{BASE}{HTTP_SERVICE}[service.http]\ntimeout = {{ zz_unknown = 1 }}\n"),
        ),
        (
            "[service.http.stats]",
            format!("{BASE}{HTTP_SERVICE}[service.http]\n[service.http.stats]\nzz_unknown = 1\n"),
        ),
        ("[service.health]", format!("{BASE}{HTTP_SERVICE}[service.health]\nzz_unknown = 1\n")),
        ("[[service.server]]", format!("{BASE}{HTTP_SERVICE}{SERVER}zz_unknown = 1\n")),
        (
            "[[vrrp]]",
            format!("{BASE}[[vrrp]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\nvips = [\"198.18.0.99/24\"]\nzz_unknown = 1\n"),
        ),
    ];
    let mut missing = Vec::new();
    for (table, config) in &tables {
        let keys = accepted_keys(config).with_context(|| format!("table {table}"))?;
        assert!(keys.len() >= 2, "{table}: parsed keys {keys:?}");
        for k in keys {
            let documented = [format!("`{k}`"), format!("`[{k}]`"), format!("`[[{k}]]`")]
                .iter()
                .any(|form| doc.contains(form.as_str()));
            if !documented {
                missing.push(format!("{table}: {k}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys missing from docs/config.md: {missing:#?}"
    );
    Ok(())
}
