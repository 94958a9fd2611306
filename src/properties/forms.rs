//! Properties of browser uploads (`multipart/form-data`, RFC 7578), whatever body
//! a client sends: the parts read are the same however the body arrives, and the
//! name a file part would be stored under is always one plain name in the folder.

use bytes::Bytes;
use http_body_util::BodyDataStream;

use super::answers::{pieces, runtime};
use crate::handlers::uploads::form::{file_name, part_file_name};
use crate::http::body::Body;
use crate::http::path::{SitePath, RESERVED_PREFIX};

/// The boundary the fuzzed bodies use (the corpus's inputs are built with it).
pub const BOUNDARY: &str = "wharf-fuzz";

/// The body size the parts are read up to.
const SIZE_LIMIT: usize = 1 << 20;

/// One part as read: its field name, its file name, its content.
type Part = (Option<String>, Option<String>, Bytes);

/// The parts of `body` arriving in `pieces`, read as the upload handler reads them
/// (`multer` over the request body's stream), up to the first error.
fn read_parts(pieces: Vec<Bytes>) -> (Vec<Part>, bool) {
    runtime().block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::channel(pieces.len().max(1));
        for piece in pieces {
            tx.try_send(Ok(piece))
                .expect("the channel holds every piece");
        }
        drop(tx);
        let constraints =
            multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(1 << 20));
        let stream = BodyDataStream::new(Body::channel(rx));
        let mut form = multer::Multipart::with_constraints(stream, BOUNDARY, constraints);
        let mut parts = Vec::new();
        loop {
            let field = match form.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => return (parts, true),
                Err(_) => return (parts, false),
            };
            let name = field.name().map(str::to_string);
            // As the handler reads it (any letter case, `filename*` first).
            let file = part_file_name(&field).ok().flatten();
            match field.bytes().await {
                Ok(content) => parts.push((name, file, content)),
                Err(_) => return (parts, false),
            }
        }
    })
}

/// A multipart body: read in pieces it gives the parts it gives read whole, and a
/// file part's stored name, when one is allowed, is a single path segment that is
/// neither a dot name nor wharf's own, and names itself again as a URL. The first
/// byte chooses the piece size.
pub fn multipart_form(data: &[u8]) {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    // Past the size limit, where a part breaks off depends on the pieces.
    if body.len() >= SIZE_LIMIT {
        return;
    }
    let whole = read_parts(pieces(body, body.len()));
    let step = usize::from(step) + 1;
    let pieced = read_parts(pieces(body, step));
    assert_eq!(whole, pieced, "read in pieces of {step} bytes");
    for raw in whole.0.iter().filter_map(|(_, file, _)| file.as_deref()) {
        for hidden in [false, true] {
            if let Some(name) = file_name(raw, hidden) {
                check_stored_name(raw, &name, hidden);
            }
        }
    }
}

/// `name`, made from the client's `raw` file name, is safe to create in a folder.
fn check_stored_name(raw: &str, name: &[u8], hidden: bool) {
    assert!(!name.is_empty(), "{raw:?}: empty name");
    assert!(name != b"." && name != b"..", "{raw:?}: dot name");
    assert!(
        !name
            .iter()
            .any(|&b| b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f),
        "{raw:?}: separator or control byte in {name:?}"
    );
    assert!(
        !name.starts_with(RESERVED_PREFIX),
        "{raw:?}: wharf's own name"
    );
    assert!(hidden || !name.starts_with(b"."), "{raw:?}: hidden name");
    let url = SitePath::root().join(name).to_url(false);
    let again = SitePath::parse(&url, hidden).expect("a stored name's URL parses");
    assert_eq!(again.segments(), [name.to_vec()], "{raw:?} → {url:?}");
}
