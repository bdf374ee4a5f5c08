//! A TCP relay that a test cuts and restores: the network between the vault and its database
//! going away and coming back, without stopping the database.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP relay to PostgreSQL that can be cut (every connection closed, new ones refused) and
/// restored.
pub struct Relay {
    pub port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl Relay {
    pub async fn start(to: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let task = {
            let (cut, conns) = (Arc::clone(&cut), Arc::clone(&conns));
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        return;
                    };
                    let to = to.clone();
                    // Checked under the lock `cut` drains: a connection accepted while the
                    // relay was being cut does not survive the cut.
                    let mut conns = conns.lock().unwrap();
                    if cut.load(Ordering::SeqCst) {
                        continue;
                    }
                    conns.push(tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(to).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    }));
                }
            })
        };
        Self {
            port,
            cut,
            conns,
            task,
        }
    }

    pub fn cut(&self) {
        let mut conns = self.conns.lock().unwrap();
        self.cut.store(true, Ordering::SeqCst);
        for c in conns.drain(..) {
            c.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// A relay to the test PostgreSQL server (`FIELDSEAL_TEST_POSTGRES`), and the server's URL with
/// the relay's address in place of the server's.
pub async fn to_test_postgres() -> (Relay, String) {
    let url = fieldseal_vault_postgres::testing::server_url();
    let (user, rest) = url
        .split_once('@')
        .expect("FIELDSEAL_TEST_POSTGRES as postgres://USER@HOST:PORT/DB");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let relay = Relay::start(host).await;
    let through = format!("{user}@127.0.0.1:{}/{path}", relay.port);
    (relay, through)
}
