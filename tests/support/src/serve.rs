//! Serving HTTP/1.1 on loopback: the accept loop every emulator and server here shares.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::header::AsHeaderName;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// A spawned task that is stopped when this is dropped: what keeps a test server serving for
/// as long as its handle lives.
#[derive(Debug)]
pub struct ServerTask(tokio::task::JoinHandle<()>);

impl ServerTask {
    /// Spawns `task` on the current runtime.
    pub fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Self {
        ServerTask(tokio::spawn(task))
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves HTTP/1.1 on `listener` until the task running it is dropped: every connection
/// (through `tls` when given; a failed handshake drops the connection) is answered by
/// `handler`, each request in turn.
///
/// ```no_run
/// use acr_import_testsupport::serve_http1;
/// use http::Response;
///
/// # async fn demo() -> anyhow::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let server = tokio::spawn(serve_http1(listener, None, |_req| async {
///     Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"hello")))
/// }));
/// server.abort();
/// # Ok(())
/// # }
/// ```
pub async fn serve_http1<F, Fut, B>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(stream, handler).await;
                    }
                }
                None => serve_connection(stream, handler).await,
            }
        });
        while conns.try_join_next().is_some() {}
    }
}

/// [`serve_http1`] with a handler of shared `state`: each request is answered by
/// `handler(state, request)`.
pub async fn serve_http1_with<S, H, Fut>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<S>,
    handler: H,
) where
    S: Send + Sync + 'static,
    H: Fn(Arc<S>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    serve_http1(listener, tls, move |req| handler(state.clone(), req)).await
}

async fn serve_connection<S, F, Fut, B>(stream: S, handler: F)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let svc = hyper::service::service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

/// A request read whole (a body that fails to arrive reads as empty), with the form parameters
/// of its query and, for a `POST`, of its body.
#[derive(Debug)]
pub struct FormRequest {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The query (without `?`), empty when absent.
    pub query: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// The decoded parameters of the query, then of a `POST`'s body, in order.
    pub params: Vec<(String, String)>,
}

impl FormRequest {
    /// Reads `req` whole.
    pub async fn read(req: Request<Incoming>) -> Self {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let query = parts.uri.query().unwrap_or_default().to_owned();
        let mut params = crate::util::parse_form(&query);
        if parts.method == Method::POST {
            params.extend(crate::util::parse_form(&String::from_utf8_lossy(&body)));
        }
        Self {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query,
            headers: parts.headers,
            body,
            params,
        }
    }

    /// The first value of the parameter `name`, if sent.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of the header `name`, if sent as text.
    pub fn header(&self, name: impl AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The scopes of every `scope` parameter, parsed.
    pub fn scopes(&self) -> Vec<crate::Access> {
        self.params
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| crate::parse_scopes(v))
            .collect()
    }
}

/// A response of `status` with `body` as JSON, sent as `content_type`.
pub(crate) fn json_response(
    status: StatusCode,
    body: &serde_json::Value,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}
