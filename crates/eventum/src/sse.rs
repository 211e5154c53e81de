//! A minimal Server-Sent Events parser: enough of the format for `eventum tail`.

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

/// Feeds on body chunks and yields complete events. Comments (keep-alives) and frames
/// without data are dropped, as the format says.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        // Lines end in \n, \r\n or \r; a chunk may stop between \r and \n, so a trailing
        // \r waits for the next chunk.
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            if self.buf[end] == b'\r' && end + 1 == self.buf.len() {
                break;
            }
            let skip = if self.buf[end] == b'\r' && self.buf.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line: Vec<u8> = self.buf.drain(..end + skip).take(end).collect();
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    out.push(SseEvent {
                        event: self.event.take(),
                        id: self.id.take(),
                        data,
                    });
                }
                self.event = None;
                self.id = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = Some(value.to_owned()),
                "id" => self.id = Some(value.to_owned()),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frames_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nevent: A\r").is_empty());
        assert!(p.push(b"\nid: 7\ndata: {\"x\":").is_empty());
        let got = p.push(b"\ndata: 1}\n\n");
        assert_eq!(
            got,
            [SseEvent {
                event: Some("A".into()),
                id: Some("7".into()),
                data: "{\"x\":\n1}".into()
            }]
        );
        let got = p.push(b"data:plain\n\nid: 9\n\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, "plain");
        assert_eq!(got[0].id, None);
    }
}
