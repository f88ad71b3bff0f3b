//! A command on the stream: what the orchestrator is asked to do for an
//! instance, with the request that asked for it. On the wire it is a flat
//! stream entry of string fields (`outbox_id`, `organization_id`,
//! `instance_id`, `command`, `request_id`, `traceparent`, the last two empty
//! when none), the format the stream has always carried, so entries written
//! by an older API (no `traceparent`) decode.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::MessageError;

/// The stream is trimmed to about this many entries (`XADD MAXLEN ~`).
pub const STREAM_MAX_LEN: u64 = 100_000;

/// What the orchestrator is asked to do for an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandKind {
    Provision,
    Reinstall,
    Terminate,
}

impl CommandKind {
    /// Every kind.
    pub const ALL: [CommandKind; 3] = [
        CommandKind::Provision,
        CommandKind::Reinstall,
        CommandKind::Terminate,
    ];

    /// The name on the stream and in `command_outbox.command`.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Provision => "provision",
            CommandKind::Reinstall => "reinstall",
            CommandKind::Terminate => "terminate",
        }
    }

    /// The kind named `value`, if any.
    pub fn parse(value: &str) -> Option<CommandKind> {
        CommandKind::ALL.into_iter().find(|k| k.as_str() == value)
    }
}

/// One command of the outbox, as relayed on the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The `command_outbox` row it was relayed from.
    pub outbox_id: i64,
    pub organization_id: Uuid,
    pub instance_id: Uuid,
    pub command: CommandKind,
    /// The API request that asked for it, followed into the orchestrator's
    /// logs and action log.
    pub request_id: Option<String>,
    /// The W3C `traceparent` of the span that relayed it, when the API
    /// exports traces: the orchestrator's steps join that trace.
    #[serde(default)]
    pub traceparent: Option<String>,
}

impl Command {
    /// The stream entry's fields, in the order written.
    pub fn to_fields(&self) -> [(&'static str, String); 6] {
        [
            ("outbox_id", self.outbox_id.to_string()),
            ("organization_id", self.organization_id.to_string()),
            ("instance_id", self.instance_id.to_string()),
            ("command", self.command.as_str().to_owned()),
            ("request_id", self.request_id.clone().unwrap_or_default()),
            ("traceparent", self.traceparent.clone().unwrap_or_default()),
        ]
    }

    /// Decodes a stream entry's fields.
    pub fn from_fields(fields: &HashMap<String, String>) -> Result<Command, MessageError> {
        let get = |name: &'static str| {
            fields
                .get(name)
                .map(String::as_str)
                .ok_or(MessageError::Missing(name))
        };
        let invalid =
            |field: &'static str, value: &str, expected: &'static str| MessageError::Invalid {
                field,
                value: value.to_owned(),
                expected,
            };
        let uuid = |name: &'static str| {
            let value = get(name)?;
            Uuid::parse_str(value).map_err(|_| invalid(name, value, "a UUID"))
        };
        let outbox_id = get("outbox_id")?;
        let command = get("command")?;
        let request_id = fields.get("request_id").filter(|r| !r.is_empty());
        let traceparent = fields.get("traceparent").filter(|t| !t.is_empty());
        Ok(Command {
            outbox_id: outbox_id
                .parse()
                .map_err(|_| invalid("outbox_id", outbox_id, "an integer"))?,
            organization_id: uuid("organization_id")?,
            instance_id: uuid("instance_id")?,
            command: CommandKind::parse(command)
                .ok_or_else(|| invalid("command", command, "a command name"))?,
            request_id: request_id.cloned(),
            traceparent: traceparent.cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_kind_survives_the_stream_fields() {
        for kind in CommandKind::ALL {
            for (request_id, traceparent) in [
                (None, None),
                (
                    Some("req-1".to_owned()),
                    Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()),
                ),
            ] {
                let c = Command {
                    outbox_id: 42,
                    organization_id: Uuid::new_v4(),
                    instance_id: Uuid::new_v4(),
                    command: kind,
                    request_id,
                    traceparent,
                };
                let encoded: HashMap<String, String> = c
                    .to_fields()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                assert_eq!(Command::from_fields(&encoded).unwrap(), c);
            }
        }
    }

    #[test]
    fn an_entry_as_the_relay_always_wrote_it_decodes() {
        // An empty request id meant "none"; extra fields are ignored.
        let c = Command::from_fields(&fields(&[
            ("outbox_id", "7"),
            ("organization_id", "8a1d0000-0000-4000-8000-000000000001"),
            ("instance_id", "8a1d0000-0000-4000-8000-000000000002"),
            ("command", "terminate"),
            ("request_id", ""),
            ("later_field", "x"),
        ]))
        .unwrap();
        assert_eq!(c.command, CommandKind::Terminate);
        assert_eq!(c.outbox_id, 7);
        assert_eq!(c.request_id, None);
        assert_eq!(c.traceparent, None, "an older API wrote none");
    }

    #[test]
    fn a_broken_entry_says_which_field() {
        let cases = [
            (
                vec![("outbox_id", "1"), ("command", "provision")],
                "organization_id",
            ),
            (
                vec![
                    ("outbox_id", "1"),
                    ("organization_id", "8a1d0000-0000-4000-8000-000000000001"),
                    ("instance_id", "nope"),
                    ("command", "provision"),
                ],
                "instance_id",
            ),
            (
                vec![
                    ("outbox_id", "1"),
                    ("organization_id", "8a1d0000-0000-4000-8000-000000000001"),
                    ("instance_id", "8a1d0000-0000-4000-8000-000000000001"),
                    ("command", "explode"),
                ],
                "command",
            ),
        ];
        for (entry, field) in cases {
            let err = Command::from_fields(&fields(&entry)).unwrap_err();
            assert!(err.to_string().contains(field), "{err} for {entry:?}");
        }
    }
}
