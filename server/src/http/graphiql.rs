//! GraphiQL at `/graphql` (for browsers), served from files embedded in the binary at build
//! time: pinned production builds (see `assets/graphiql/VERSIONS`), no CDN, a strict CSP.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Scripts and styles only from this server; GraphiQL's editor sets inline styles and its
/// stylesheet carries its fonts and icons as data: URLs; requests go to this origin only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../../assets/graphiql/index.html");

/// Every embedded file: name under `/graphiql/`, media type, bytes.
const ASSETS: [(&str, &str, &[u8]); 6] = [
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "twh-graphiql.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/twh-graphiql.js"),
    ),
    (
        "twh-graphiql.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/twh-graphiql.css"),
    ),
];

/// GraphiQL's page and files, under its policy.
fn secured(response: Response) -> Response {
    super::own_page(response, CONTENT_SECURITY_POLICY, false)
}

/// The GraphiQL page.
pub fn page() -> Response {
    secured(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            INDEX,
        )
            .into_response(),
    )
}

/// `GET /graphiql/{file}`: one of the embedded files.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, media_type, bytes)) => secured(
            (
                [
                    (header::CONTENT_TYPE, *media_type),
                    // Names are not content-hashed: cache for a day, not forever.
                    (header::CACHE_CONTROL, "public, max-age=86400"),
                ],
                *bytes,
            )
                .into_response(),
        ),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    /// The vendored files are the pinned packages' own (VERSIONS is written by update.sh).
    #[test]
    fn embedded_bundles_match_their_recorded_checksums() {
        let versions = include_str!("../../assets/graphiql/VERSIONS");
        let recorded: Vec<(&str, &str)> = versions
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let (_, sha, file) = (parts.next()?, parts.next()?, parts.next()?);
                Some((file, sha))
            })
            .collect();
        assert_eq!(recorded.len(), 4, "{versions}");
        for (file, sha) in recorded {
            let (_, _, bytes) = ASSETS
                .iter()
                .find(|(name, _, _)| *name == file)
                .unwrap_or_else(|| panic!("{file} is recorded but not embedded"));
            assert_eq!(hex::encode(Sha256::digest(bytes)), sha, "{file}");
        }
    }

    #[test]
    fn the_page_loads_only_embedded_files() {
        for reference in INDEX
            .split(['"', '\''])
            .filter(|s| s.starts_with('/') || s.contains("://"))
        {
            let name = reference.strip_prefix("/graphiql/").unwrap_or_else(|| {
                panic!("the page refers to {reference}, which is not an embedded file")
            });
            assert!(
                ASSETS.iter().any(|(file, _, _)| *file == name),
                "{name} is not embedded"
            );
        }
    }
}
