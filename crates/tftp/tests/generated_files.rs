//! A name the boot tree's generator answers is served over TFTP like a file on disk: the
//! shell asks the tree, it never opens paths itself.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::Arc;
use std::time::Duration;

use kindling_files::{AccessError, BootTree, Client, Generator, TreeConfig};
use kindling_tftp::TftpService;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Script;

impl Generator for Script {
    fn generate(&self, name: &str, client: &Client) -> Option<Result<Vec<u8>, AccessError>> {
        (name == "boot.ipxe")
            .then(|| Ok(format!("#!ipxe\necho hello {}\n", client.address).into_bytes()))
    }
}

async fn fetch(server: std::net::SocketAddr, name: &str) -> Result<Vec<u8>, u16> {
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut packet = vec![0, 1];
    packet.extend_from_slice(name.as_bytes());
    packet.extend_from_slice(b"\0octet\0");
    client.send_to(&packet, server).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 600];
    loop {
        let (len, tid) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .expect("the server answers")
            .unwrap();
        match buf[..2] {
            [0, 3] => {
                out.extend_from_slice(&buf[4..len]);
                client.send_to(&[0, 4, buf[2], buf[3]], tid).await.unwrap();
                if len < 516 {
                    return Ok(out);
                }
            }
            [0, 5] => return Err(u16::from_be_bytes([buf[2], buf[3]])),
            _ => panic!("unexpected packet {:?}", &buf[..len]),
        }
    }
}

#[tokio::test]
async fn a_generated_file_is_served_over_tftp_and_the_disk_still_answers_the_rest() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("boot.ipxe"), b"from disk").unwrap();
    std::fs::write(root.path().join("undionly.kpxe"), vec![9u8; 1500]).unwrap();
    let yaml = format!(
        "tftp:\n  root: {:?}\n  listen: [\"127.0.0.1:0\"]\n",
        root.path().display().to_string()
    );
    let config = Arc::new(
        kindling_config::parse(&yaml, "test")
            .unwrap()
            .config
            .tftp
            .unwrap(),
    );
    let tree = BootTree::open(&TreeConfig::from_tftp(&config)).unwrap();
    tree.set_generator(Some(Arc::new(Script)));
    let service = TftpService::bind(config, tree).await.unwrap();
    let server = service.local_addrs()[0];
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(service.run(shutdown.clone()));

    assert_eq!(
        fetch(server, "boot.ipxe").await.unwrap(),
        b"#!ipxe\necho hello 127.0.0.1\n"
    );
    assert_eq!(
        fetch(server, "undionly.kpxe").await.unwrap(),
        vec![9u8; 1500]
    );
    assert_eq!(fetch(server, "missing").await, Err(1));
    assert_eq!(fetch(server, "../boot.ipxe").await, Err(2));

    shutdown.cancel();
    serving.await.unwrap();
}
