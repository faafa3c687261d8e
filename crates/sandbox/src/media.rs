//! Media as Graph takes it: the types and sizes Meta accepts per kind of
//! media message (Meta's "Supported media types": image 5 MB, audio and
//! video 16 MB, document 100 MB, sticker 500 KB animated / 100 KB static).
//! Uploads are checked against these, and a send by media id must name
//! media of a type its message kind takes.

use wameter_meta::graph::GraphError;

/// Largest upload of any type (a document): the body limit of the upload
/// route, with room for the multipart framing.
pub const LARGEST: usize = 100 * MB;

/// Meta writes "5 MB", "500 KB": read as decimal units, the stricter
/// reading (whatsapp-api-js reads them so too), so that what the sandbox
/// takes Meta takes.
const MB: usize = 1_000_000;
const KB: usize = 1_000;

/// (message kind, MIME types, largest size).
const KINDS: [(&str, &[&str], usize); 5] = [
    ("image", &["image/jpeg", "image/png"], 5 * MB),
    // Static stickers may be at most 100 KB, animated ones 500 KB; telling
    // them apart needs the WebP's own header, which the sandbox does not
    // read: it takes both up to 500 KB.
    ("sticker", &["image/webp"], 500 * KB),
    (
        "audio",
        &[
            "audio/aac",
            "audio/amr",
            "audio/mpeg",
            "audio/mp4",
            "audio/ogg",
        ],
        16 * MB,
    ),
    ("video", &["video/3gpp", "video/3gp", "video/mp4"], 16 * MB),
    (
        "document",
        &[
            "text/plain",
            "application/pdf",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ],
        100 * MB,
    ),
];

/// Meta's code for a refused upload.
const UPLOAD_ERROR: u32 = 131053;

/// The MIME type alone (`audio/ogg; codecs=opus` → `audio/ogg`), lowercase.
pub fn essence(mime_type: &str) -> String {
    mime_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Checks an upload of `size` bytes of `mime_type`.
pub fn check_upload(mime_type: &str, size: usize) -> Result<(), GraphError> {
    let essence = essence(mime_type);
    let Some((kind, _, largest)) = KINDS
        .iter()
        .find(|(_, types, _)| types.contains(&essence.as_str()))
    else {
        let all: Vec<&str> = KINDS
            .iter()
            .flat_map(|(_, types, _)| types.iter().copied())
            .collect();
        return Err(GraphError::new(
            UPLOAD_ERROR,
            "Media upload error",
            format!(
                "Param file must be a file with one of the following types: {}. Received file of type '{essence}'.",
                all.join(", ")
            ),
        ));
    };
    if size == 0 {
        return Err(GraphError::new(
            UPLOAD_ERROR,
            "Media upload error",
            "the file is empty".to_string(),
        ));
    }
    if size > *largest {
        return Err(GraphError::new(
            UPLOAD_ERROR,
            "Media upload error",
            format!(
                "{kind} files of type {essence} may be at most {largest} bytes; this one is {size}"
            ),
        ));
    }
    Ok(())
}

/// Checks that media of `mime_type` can be sent as a `kind` message: a
/// document may be any uploaded type, other kinds only their own.
pub fn check_kind(kind: &str, id: &str, mime_type: &str) -> Result<(), GraphError> {
    let essence = essence(mime_type);
    let fits = kind == "document"
        || KINDS
            .iter()
            .any(|(k, types, _)| *k == kind && types.contains(&essence.as_str()));
    if fits {
        Ok(())
    } else {
        Err(GraphError::invalid(format!(
            "{kind}.id `{id}`: that media is {essence}, which a {kind} message cannot carry"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_follow_metas_types_and_sizes() {
        assert!(check_upload("image/jpeg", 5 * MB).is_ok());
        assert_eq!(
            check_upload("image/jpeg", 5 * MB + 1).unwrap_err().code,
            UPLOAD_ERROR
        );
        assert!(check_upload("audio/ogg; codecs=opus", 1000).is_ok());
        assert!(check_upload("application/pdf", 100 * MB).is_ok());
        assert!(check_upload("image/webp", 500 * KB + 1).is_err());
        let refused = check_upload("image/gif", 10).unwrap_err();
        assert!(refused.details.contains("image/gif"), "{}", refused.details);
        assert!(check_upload("image/png", 0).is_err());
    }

    #[test]
    fn a_kind_carries_its_own_types_and_a_document_any() {
        assert!(check_kind("image", "1", "image/png").is_ok());
        assert!(check_kind("image", "1", "audio/mpeg").is_err());
        assert!(check_kind("sticker", "1", "image/jpeg").is_err());
        assert!(check_kind("document", "1", "image/jpeg").is_ok());
    }
}
