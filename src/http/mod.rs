//! HTTP/1.1 on the wire: the request-head parser and request bodies.
