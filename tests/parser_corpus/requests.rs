//! Real-world request heads, shared by the differential test and `benches/parse.rs`.

/// The smallest subscribe a client sends.
pub const SUBSCRIBE_MIN: &[u8] = b"GET /events?topic=a HTTP/1.1\r\nHost: localhost:8080\r\n\r\n";

/// Chromium's `new EventSource(...)`, reconnecting with a Last-Event-ID.
pub const CHROMIUM_EVENTSOURCE: &[u8] = b"GET /events?topic=news&topic=sports HTTP/1.1\r\n\
Host: localhost:8080\r\n\
Connection: keep-alive\r\n\
Accept: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
Last-Event-ID: 1732212345000042\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Dest: empty\r\n\
Referer: http://localhost:8080/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Cookie: session=9f86d081884c7d659a2feaa0c55ad015; theme=dark\r\n\
\r\n";

/// Firefox's EventSource, with its Pragma and lower-case-free header order.
pub const FIREFOX_EVENTSOURCE: &[u8] = b"GET /events?topic=news HTTP/1.1\r\n\
Host: localhost:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\r\n\
Accept: text/event-stream\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: http://localhost:8080/\r\n\
Connection: keep-alive\r\n\
Cookie: session=9f86d081884c7d659a2feaa0c55ad015\r\n\
Sec-Fetch-Dest: empty\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Site: same-origin\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
Last-Event-ID: 42\r\n\
\r\n";

/// `curl -d 'hello' 'http://127.0.0.1:8080/publish?topic=news&event=update'`, head only.
pub const CURL_PUBLISH: &[u8] = b"POST /publish?topic=news&event=update HTTP/1.1\r\n\
Host: 127.0.0.1:8080\r\n\
User-Agent: curl/8.11.1\r\n\
Accept: */*\r\n\
Content-Length: 5\r\n\
Content-Type: application/x-www-form-urlencoded\r\n\
\r\n";

/// curl streaming a publish body (`-T -`): chunked, with a bearer token.
pub const CURL_PUBLISH_CHUNKED: &[u8] = b"POST /publish?topic=news HTTP/1.1\r\n\
Host: 127.0.0.1:8080\r\n\
User-Agent: curl/8.11.1\r\n\
Accept: */*\r\n\
Authorization: Bearer 6b86b273ff34fce19d6b804eff5a3f57\r\n\
Transfer-Encoding: chunked\r\n\
Expect: 100-continue\r\n\
\r\n";

/// A browser's CORS preflight before a cross-origin publish.
pub const CORS_PREFLIGHT: &[u8] = b"OPTIONS /publish?topic=news HTTP/1.1\r\n\
Host: api.example.com\r\n\
Accept: */*\r\n\
Access-Control-Request-Method: POST\r\n\
Access-Control-Request-Headers: authorization,content-type\r\n\
Origin: https://app.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Site: same-site\r\n\
Sec-Fetch-Dest: empty\r\n\
\r\n";

/// A request with 40 field lines, as a client behind a few proxies might send.
pub fn forty_headers() -> Vec<u8> {
    let mut req = b"GET /events?topic=a HTTP/1.1\r\nHost: localhost:8080\r\n".to_vec();
    for i in 1..40 {
        req.extend_from_slice(
            format!("X-Forwarded-Hop-{i:02}: 10.0.{i}.1, proxy-{i}.internal\r\n").as_bytes(),
        );
    }
    req.extend_from_slice(b"\r\n");
    req
}
