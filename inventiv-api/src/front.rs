//! The service every connection is served by. The data plane's hot routes
//! (`POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings`) are
//! answered here directly; everything else goes to the router and its
//! layers. Behind the router each request crossed seven boxed layers
//! (metrics, the request id's three, its span, the browser guard, the body
//! limit) and axum's handler machinery: a fifth of the proxy's CPU per
//! request at c=64 (see docs/architecture.md, "Hot path"). [`v1`] does what
//! those layers do for these routes, in one function: the request id (a
//! well-formed client id kept, else a new one; echoed; [`request_id::current`]
//! for the handler), the HTTP metrics, the request's log line, a
//! cross-origin cookie write refused, the security headers, the body limit.
//! The router keeps the same routes (their handlers document the operations,
//! answer other methods with 405, and serve a POST the same way should one
//! reach them).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use axum::serve::IncomingStream;
use axum::Router;
use futures_util::future::Either;
use tower_service::Service;
use tracing::Instrument;

use crate::metrics::HttpRoute;
use crate::proxy::forward::{self, Endpoint};
use crate::request_id;
use crate::state::AppState;

/// Makes a [`Front`] per accepted connection (with its peer's address, as
/// the router's `ConnectInfo`).
#[derive(Clone)]
pub struct MakeFront(Arc<Shared>);

/// What every connection's [`Front`] shares.
struct Shared {
    app: Router,
    state: AppState,
    /// The HTTP series of the three routes, looked up once.
    routes: [HttpRoute; 3],
}

impl MakeFront {
    /// The front of `app` (the complete router, [`crate::startup::app`]).
    pub fn new(app: Router, state: AppState) -> MakeFront {
        let routes = Endpoint::ALL.map(|e| state.metrics.http_route(e.path()));
        MakeFront(Arc::new(Shared { app, state, routes }))
    }
}

impl<L> Service<IncomingStream<'_, L>> for MakeFront
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    type Response = Front;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Front, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(
        &mut self,
        stream: IncomingStream<'_, L>,
    ) -> std::future::Ready<Result<Front, Infallible>> {
        std::future::ready(Ok(Front {
            make: self.clone(),
            peer: *stream.remote_addr(),
        }))
    }
}

/// One connection's service. hyper's adapter clones it for every request:
/// one reference count, not one for each part of [`Shared`].
#[derive(Clone)]
pub struct Front {
    make: MakeFront,
    peer: SocketAddr,
}

type V1Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<V1Future, RouteFuture<Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if request.method() == Method::POST {
            if let Some(endpoint) = Endpoint::of(request.uri().path()) {
                let route = self.make.0.routes[endpoint as usize].clone();
                return Either::Left(Box::pin(v1(
                    self.make.0.state.clone(),
                    endpoint,
                    route,
                    request,
                )));
            }
        }
        request.extensions_mut().insert(ConnectInfo(self.peer));
        Either::Right(self.make.0.app.clone().call(request))
    }
}

/// A hot `/v1` route's request, end to end.
async fn v1(
    state: AppState,
    endpoint: Endpoint,
    route: HttpRoute,
    request: Request,
) -> Result<Response, Infallible> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let id = parts
        .headers
        .get(&request_id::HEADER)
        .filter(|v| request_id::well_formed(v.as_bytes()))
        .and_then(|v| v.to_str().ok())
        .map_or_else(request_id::generate, str::to_owned);
    // A span only while traces are exported or at the debug level: at the
    // info level it cost ~4 % of the CPU per request (made, formatted,
    // entered and left at every poll) for log lines that are rare on this
    // path, and those name their request themselves ([`request_id::shown`]).
    let span = if inventiv_common::telemetry::enabled() {
        request_id::request_span(&id, &Method::POST, endpoint.path(), &parts.headers)
    } else {
        tracing::debug_span!("request", request_id = %id, method = "POST", route = endpoint.path())
    };
    let answer = async {
        if let Some(refused) =
            crate::browser::cross_origin_write(&parts.method, &parts.headers, &state)
        {
            return refused;
        }
        let body =
            match crate::proxy::error::read_body(&parts.headers, body, state.config.max_body_bytes)
                .await
            {
                Ok(body) => body,
                Err(e) => return e.into_response(),
            };
        // Boxed: this request's future stays small to move (the whole
        // forwarding state is kilobytes).
        Box::pin(forward::serve(state.clone(), parts.headers, body, endpoint))
            .await
            .into_response()
    };
    let mut response = request_id::scope(id.clone(), answer.instrument(span.clone())).await;
    let headers = response.headers_mut();
    crate::browser::secure(headers, &state);
    if let Ok(v) = HeaderValue::try_from(id.as_str()) {
        headers.insert(&request_id::HEADER, v);
    }
    let status = response.status();
    route.count(&Method::POST, status, started.elapsed());
    if span.is_disabled() {
        request_id::outcome_of(&id, &Method::POST, endpoint.path(), status, started);
    } else {
        request_id::outcome(&span, endpoint.path(), status, started);
    }
    Ok(response)
}
