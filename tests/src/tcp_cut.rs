//! A TCP forwarder a test can cut: while cut, every connection through it is closed and new ones are closed at
//! once, as a database behind a failed network looks to its clients.

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering::SeqCst},
        Arc, Mutex,
    },
    thread,
};

pub struct TcpCut {
    pub port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl TcpCut {
    /// Forwards a free local port to `target`.
    pub fn start(target: SocketAddr) -> TcpCut {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (cut2, open2) = (cut.clone(), open.clone());
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if cut2.load(SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else { continue };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                    if let Ok(mut open) = open2.lock() {
                        open.extend([c2, s2]);
                    }
                }
                let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) else { continue };
                thread::spawn(move || pipe(client, server));
                thread::spawn(move || pipe(s3, c3));
            }
        });
        TcpCut { port, cut, open }
    }

    /// Closes every connection through the forwarder and refuses new ones until [`TcpCut::restore`].
    pub fn cut(&self) {
        self.cut.store(true, SeqCst);
        if let Ok(mut open) = self.open.lock() {
            for stream in open.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, SeqCst);
    }
}
