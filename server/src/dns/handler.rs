//! One DNS query, start to answer: hickory-server parses it and calls [`Handler`] (one per
//! network resolver, so it knows which network was asked); the handler asks the
//! [`Index`](super::index::Index) what the querier gets, and answers from weft's records,
//! forwards through [`Upstreams`](super::upstream::Upstreams), or refuses.
//!
//! Answers from weft's records are authoritative (AA) with TTL [`TTL`]; NXDOMAIN for a name
//! that is weft's carries no SOA (nothing should cache it for long). Forwarded answers are
//! passed on as the upstream gave them (rcode, answer, authority and additional sections, TC
//! and AD), with RA set. A querier that may not forward (on internal networks only) gets
//! REFUSED; no upstream, or every upstream failing, is SERVFAIL.

use std::{
    net::IpAddr,
    sync::{Arc, atomic::Ordering::Relaxed},
};

use hickory_proto::{
    op::{
        Edns, Header, HeaderCounts, LowerQuery, Message, MessageType, Metadata, OpCode,
        ResponseCode,
    },
    rr::{
        DNSClass, Name, RData, Record, RecordType,
        rdata::{A, AAAA, PTR},
    },
};
use hickory_server::{
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::MessageResponseBuilder,
};

use super::{
    Shared,
    index::{Answer, Want},
    upstream::ForwardError,
};

/// TTL of weft's own records, in seconds. Short, because endpoints come and go and the index
/// follows within milliseconds: a caching client (nscd, systemd-resolved, a JVM) holds a
/// removed address at most this long, while a burst of lookups of one name (a connection
/// pool filling up) is still answered from its cache.
pub const TTL: u32 = 5;

/// The resolver of one network (by id).
pub struct Handler {
    /// What every resolver shares.
    pub shared: Arc<Shared>,
    /// The network whose gateway this resolver listens on.
    pub network: String,
}

/// What a query gets.
enum Outcome {
    /// Records from weft's index (possibly none: NODATA).
    Records(Vec<Record>),
    /// A name of weft's that does not exist.
    NxDomain,
    /// An upstream's answer.
    Forwarded(Message),
    /// Refused (nothing is forwarded for this querier) or SERVFAIL (nowhere to forward).
    Error(ResponseCode),
}

impl Handler {
    /// The index's answer for `query` from `src`, and whether `src` may forward.
    fn decide(&self, src: IpAddr, query: &LowerQuery) -> (Answer, bool) {
        let ix = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
        let q = ix.querier(src, &self.network);
        let may = ix.may_forward(&q, &self.network);
        if query.query_class() != DNSClass::IN {
            return (Answer::Forward, may);
        }
        let name = query.name().to_string().to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        let rotate = self.shared.rotation.fetch_add(1, Relaxed);
        let want = match query.query_type() {
            RecordType::PTR => {
                return match query.original().name().parse_arpa_name() {
                    Ok(net) if net.prefix_len() == net.max_prefix_len() => {
                        (ix.reverse(&q, &self.network, net.addr()), may)
                    }
                    _ => (Answer::Forward, may),
                };
            }
            RecordType::A => Want::A,
            RecordType::AAAA => Want::Aaaa,
            RecordType::ANY => Want::Any,
            _ => Want::Other,
        };
        (ix.lookup(&q, &self.network, name, want, rotate), may)
    }

    /// What `request` gets.
    async fn outcome(&self, request: &Request, query: &LowerQuery) -> Outcome {
        let stats = self.shared.ctl.stats();
        let (answer, may_forward) = self.decide(request.src().ip(), query);
        let owner = query.original().name().clone();
        let records = match answer {
            Answer::Addrs(addrs) => addrs
                .into_iter()
                .map(|a| match a {
                    IpAddr::V4(v4) => Record::from_rdata(owner.clone(), TTL, RData::A(A(v4))),
                    IpAddr::V6(v6) => Record::from_rdata(owner.clone(), TTL, RData::AAAA(AAAA(v6))),
                })
                .collect(),
            Answer::Names(names) => names
                .iter()
                .filter_map(|n| Name::from_ascii(n).ok())
                .map(|n| Record::from_rdata(owner.clone(), TTL, RData::PTR(PTR(n))))
                .collect(),
            Answer::NxDomain => {
                stats.dns_answers.fetch_add(1, Relaxed);
                return Outcome::NxDomain;
            }
            Answer::Forward => return self.forward(request, query, may_forward).await,
        };
        stats.dns_answers.fetch_add(1, Relaxed);
        Outcome::Records(records)
    }

    /// Forwards `query` upstream, if `src` may.
    async fn forward(&self, request: &Request, query: &LowerQuery, may: bool) -> Outcome {
        if !may {
            return Outcome::Error(ResponseCode::Refused);
        }
        let upstreams = {
            let ix = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            let ours = ix.servers();
            self.shared
                .upstreams
                .current(|a| a.port() == 53 && ours.iter().any(|(_, ip)| *ip == a.ip()))
        };
        if upstreams.is_empty() {
            return Outcome::Error(ResponseCode::ServFail);
        }
        self.shared.ctl.stats().dns_forwards.fetch_add(1, Relaxed);
        let mut m = Message::query();
        m.metadata.recursion_desired = request.metadata.recursion_desired;
        m.metadata.checking_disabled = request.metadata.checking_disabled;
        m.queries.push(query.original().clone());
        if let Some(e) = &request.edns {
            let mut out = Edns::new();
            out.set_max_payload(e.max_payload().clamp(512, 1232));
            out.set_dnssec_ok(e.flags().dnssec_ok);
            m.edns = Some(out);
        }
        let tcp = request.protocol() != hickory_net::xfer::Protocol::Udp;
        match self.shared.upstreams.forward(&upstreams, &m, tcp).await {
            Ok(answer) => Outcome::Forwarded(answer),
            Err(ForwardError::NoUpstream) => Outcome::Error(ResponseCode::ServFail),
            Err(ForwardError::Failed(e)) => {
                tracing::debug!(name = %query.name(), error = %e, "forwarding failed");
                Outcome::Error(ResponseCode::ServFail)
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: hickory_net::runtime::Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        self.shared.ctl.stats().dns_queries.fetch_add(1, Relaxed);
        let edns = request.edns.as_ref().map(|e| {
            let mut out = Edns::new();
            out.set_max_payload(e.max_payload().max(512));
            out.set_dnssec_ok(e.flags().dnssec_ok);
            out
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let mut meta = Metadata::response_from_request(&request.metadata);
        let query = match request.request_info() {
            Ok(info)
                if request.metadata.message_type == MessageType::Query
                    && request.metadata.op_code == OpCode::Query =>
            {
                info.query
            }
            Ok(_) => {
                meta.response_code = ResponseCode::NotImp;
                return send(&mut response, builder.build_no_records(meta)).await;
            }
            Err(_) => {
                meta.response_code = ResponseCode::FormErr;
                return send(&mut response, builder.build_no_records(meta)).await;
            }
        };
        let outcome = self.outcome(request, query).await;
        match outcome {
            Outcome::Records(records) => {
                meta.authoritative = true;
                meta.recursion_available = true;
                let none: [&Record; 0] = [];
                send(
                    &mut response,
                    builder.build(meta, records.iter(), none, none, none),
                )
                .await
            }
            Outcome::NxDomain => {
                meta.authoritative = true;
                meta.recursion_available = true;
                meta.response_code = ResponseCode::NXDomain;
                send(&mut response, builder.build_no_records(meta)).await
            }
            Outcome::Forwarded(up) => {
                meta.recursion_available = true;
                meta.response_code = up.metadata.response_code;
                meta.truncation = up.metadata.truncation;
                meta.authentic_data = up.metadata.authentic_data;
                let none: [&Record; 0] = [];
                let built = builder.build(
                    meta,
                    up.answers.iter(),
                    up.authorities.iter(),
                    none,
                    up.additionals.iter(),
                );
                send(&mut response, built).await
            }
            Outcome::Error(code) => {
                meta.recursion_available = code != ResponseCode::Refused;
                meta.response_code = code;
                send(&mut response, builder.build_no_records(meta)).await
            }
        }
    }
}

/// Sends `message`; on a failure to send, a SERVFAIL header as the info (nothing was sent).
async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    message: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> ResponseInfo {
    let mut fallback = *message.metadata();
    match response.send_response(message).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "could not send a DNS answer");
            fallback.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata: fallback,
                counts: HeaderCounts::default(),
            })
        }
    }
}
