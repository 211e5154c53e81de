//! The requirement aggregate from seed 000: created, updated, sent for approval,
//! approved, or escalated when the approval deadline passes.

use eventum_runtime::{Aggregate, Command, DomainError};
use serde::{Deserialize, Serialize};

/// Longest title accepted, in characters.
pub const TITLE_CHARS_MAX: usize = 200;
/// Longest description accepted, in characters.
pub const DESCRIPTION_CHARS_MAX: usize = 10_000;
/// Longest approval window a request may ask for.
pub const APPROVAL_WINDOW_S_MAX: u64 = 30 * 24 * 3600;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RequirementCommand {
    CreateRequirement {
        requirement_id: String,
        title: String,
        description: String,
        author: String,
    },
    UpdateRequirement {
        requirement_id: String,
        title: Option<String>,
        description: Option<String>,
        editor: String,
    },
    RequestApproval {
        requirement_id: String,
        approver: String,
        /// When the approval is due, in microseconds since the Unix epoch.
        due_at_us: i64,
        requested_by: String,
    },
    ApproveRequirement {
        requirement_id: String,
        approver: String,
    },
    /// Sent by `RequirementApprovalSaga` when the approval deadline passes.
    EscalateApproval { requirement_id: String },
}

impl Command for RequirementCommand {
    const TYPES: &'static [&'static str] = &[
        "CreateRequirement",
        "UpdateRequirement",
        "RequestApproval",
        "ApproveRequirement",
        "EscalateApproval",
    ];

    fn command_type(&self) -> &'static str {
        match self {
            Self::CreateRequirement { .. } => "CreateRequirement",
            Self::UpdateRequirement { .. } => "UpdateRequirement",
            Self::RequestApproval { .. } => "RequestApproval",
            Self::ApproveRequirement { .. } => "ApproveRequirement",
            Self::EscalateApproval { .. } => "EscalateApproval",
        }
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            Self::CreateRequirement {
                title,
                description,
                author,
                ..
            } => {
                check_title(title)?;
                check_description(description)?;
                check_person("author", author)
            }
            Self::UpdateRequirement {
                title,
                description,
                editor,
                ..
            } => {
                if title.is_none() && description.is_none() {
                    return Err("an update needs a title or a description".into());
                }
                title.as_deref().map(check_title).transpose()?;
                description.as_deref().map(check_description).transpose()?;
                check_person("editor", editor)
            }
            Self::RequestApproval {
                approver,
                requested_by,
                ..
            } => {
                check_person("approver", approver)?;
                check_person("requested_by", requested_by)
            }
            Self::ApproveRequirement { approver, .. } => check_person("approver", approver),
            Self::EscalateApproval { .. } => Ok(()),
        }
    }
}

fn check_title(title: &str) -> Result<(), String> {
    let chars = title.trim().chars().count();
    if chars == 0 {
        return Err("title must not be empty".into());
    }
    if chars > TITLE_CHARS_MAX {
        return Err(format!(
            "title is {chars} characters; the limit is {TITLE_CHARS_MAX}"
        ));
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), String> {
    let chars = description.chars().count();
    if chars > DESCRIPTION_CHARS_MAX {
        return Err(format!(
            "description is {chars} characters; the limit is {DESCRIPTION_CHARS_MAX}"
        ));
    }
    Ok(())
}

fn check_person(field: &str, name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(format!("{field} must be 1 to 100 characters"));
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RequirementEvent {
    RequirementCreated {
        requirement_id: String,
        title: String,
        description: String,
        author: String,
    },
    RequirementUpdated {
        requirement_id: String,
        title: Option<String>,
        description: Option<String>,
        editor: String,
    },
    ApprovalRequested {
        requirement_id: String,
        approver: String,
        due_at_us: i64,
        requested_by: String,
    },
    RequirementApproved {
        requirement_id: String,
        approver: String,
    },
    ApprovalEscalated {
        requirement_id: String,
        approver: String,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not created yet.
    #[default]
    None,
    Draft,
    PendingApproval,
    /// The deadline passed without an approval; it can still be approved.
    Escalated,
    Approved,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequirementError {
    #[error("requirement does not exist")]
    NotFound,
    #[error("requirement exists already")]
    AlreadyExists,
    #[error("an approved requirement cannot change")]
    AlreadyApproved,
    #[error("an approval is already pending")]
    ApprovalPending,
    #[error("no approval was requested")]
    NoApprovalRequested,
    #[error("only {expected} may approve this requirement")]
    WrongApprover { expected: String },
}

impl DomainError for RequirementError {
    fn code(&self) -> &str {
        match self {
            Self::NotFound => "requirement_not_found",
            Self::AlreadyExists => "requirement_exists",
            Self::AlreadyApproved => "requirement_approved",
            Self::ApprovalPending => "approval_pending",
            Self::NoApprovalRequested => "no_approval_requested",
            Self::WrongApprover { .. } => "wrong_approver",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Requirement {
    pub status: Status,
    pub approver: Option<String>,
}

impl Aggregate for Requirement {
    const CATEGORY: &'static str = "requirement";
    type Command = RequirementCommand;
    type Event = RequirementEvent;
    type Error = RequirementError;

    fn aggregate_id(command: &RequirementCommand) -> String {
        use RequirementCommand::*;
        match command {
            CreateRequirement { requirement_id, .. }
            | UpdateRequirement { requirement_id, .. }
            | RequestApproval { requirement_id, .. }
            | ApproveRequirement { requirement_id, .. }
            | EscalateApproval { requirement_id } => requirement_id.clone(),
        }
    }

    fn decide(
        &self,
        command: &RequirementCommand,
    ) -> Result<Vec<RequirementEvent>, RequirementError> {
        use RequirementCommand as C;
        use RequirementEvent as E;
        if self.status == Status::None && !matches!(command, C::CreateRequirement { .. }) {
            return Err(RequirementError::NotFound);
        }
        match command.clone() {
            C::CreateRequirement {
                requirement_id,
                title,
                description,
                author,
            } => {
                if self.status != Status::None {
                    return Err(RequirementError::AlreadyExists);
                }
                Ok(vec![E::RequirementCreated {
                    requirement_id,
                    title,
                    description,
                    author,
                }])
            }
            C::UpdateRequirement {
                requirement_id,
                title,
                description,
                editor,
            } => {
                if self.status == Status::Approved {
                    return Err(RequirementError::AlreadyApproved);
                }
                Ok(vec![E::RequirementUpdated {
                    requirement_id,
                    title,
                    description,
                    editor,
                }])
            }
            C::RequestApproval {
                requirement_id,
                approver,
                due_at_us,
                requested_by,
            } => match self.status {
                Status::Approved => Err(RequirementError::AlreadyApproved),
                Status::PendingApproval | Status::Escalated => {
                    Err(RequirementError::ApprovalPending)
                }
                _ => Ok(vec![E::ApprovalRequested {
                    requirement_id,
                    approver,
                    due_at_us,
                    requested_by,
                }]),
            },
            C::ApproveRequirement {
                requirement_id,
                approver,
            } => match self.status {
                Status::Approved => Err(RequirementError::AlreadyApproved),
                Status::PendingApproval | Status::Escalated => {
                    let expected = self.approver.clone().unwrap_or_default();
                    if approver != expected {
                        return Err(RequirementError::WrongApprover { expected });
                    }
                    Ok(vec![E::RequirementApproved {
                        requirement_id,
                        approver,
                    }])
                }
                _ => Err(RequirementError::NoApprovalRequested),
            },
            // A deadline that fires after the approval (or twice) changes nothing: the
            // saga may race with an approver.
            C::EscalateApproval { requirement_id } => match self.status {
                Status::PendingApproval => Ok(vec![E::ApprovalEscalated {
                    requirement_id,
                    approver: self.approver.clone().unwrap_or_default(),
                }]),
                _ => Ok(vec![]),
            },
        }
    }

    fn evolve(mut self, event: &RequirementEvent) -> Self {
        use RequirementEvent as E;
        match event {
            E::RequirementCreated { .. } => self.status = Status::Draft,
            E::RequirementUpdated { .. } => {}
            E::ApprovalRequested { approver, .. } => {
                self.status = Status::PendingApproval;
                self.approver = Some(approver.clone());
            }
            E::RequirementApproved { .. } => self.status = Status::Approved,
            E::ApprovalEscalated { .. } => self.status = Status::Escalated,
        }
        self
    }
}
