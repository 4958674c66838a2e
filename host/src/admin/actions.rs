//! The admin API's actions, typed: what a method and path mean, and the
//! name each has in metrics and the audit trail. A dispatch `match` over
//! them is exhaustive, so an action cannot be routed and then forgotten.

use hyper::Method;

/// An action under `…/admin/v3/kms/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsAction {
    Configure,
    Reconfigure,
    Start,
    Stop,
    Status,
    Config,
    ClearCache,
    CreateKey,
    ListKeys,
    DescribeKey,
    DeleteKey,
    CancelKeyDeletion,
    EnableKey,
    DisableKey,
    RotateKey,
    UpdateKeyDescription,
    TagKey,
    UntagKey,
    GenerateDataKey,
}

/// An action under `…/admin/v3/policies/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyAction {
    List,
    Bindings,
    Bind,
    Unbind,
    RotationRun,
    Evaluate,
    Upload,
    Get,
    Delete,
}

/// An action under `…/admin/v3/identities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityAction {
    List,
    Create,
    Get,
    Update,
    Enable,
    Disable,
    RotateSecret,
    Remove,
}

/// Any admin action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Kms(KmsAction),
    Policies(PolicyAction),
    Identities(IdentityAction),
}

impl IdentityAction {
    /// The action of a path under `identities` (`""`, `<ak>`, `<ak>/<verb>`).
    pub fn of(method: &Method, rest: &str) -> Option<Self> {
        use IdentityAction as A;
        let parts: Vec<&str> = rest.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
        Some(match (method.as_str(), parts.as_slice()) {
            ("GET", []) => A::List,
            ("POST", []) => A::Create,
            ("GET", [_]) => A::Get,
            ("POST" | "PUT", [_]) => A::Update,
            ("DELETE", [_]) => A::Remove,
            ("POST", [_, "enable"]) => A::Enable,
            ("POST", [_, "disable"]) => A::Disable,
            ("POST", [_, "rotate-secret"]) => A::RotateSecret,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use IdentityAction as A;
        match self {
            A::List => "identities:list",
            A::Create => "identities:create",
            A::Get => "identities:get",
            A::Update => "identities:update",
            A::Enable => "identities:enable",
            A::Disable => "identities:disable",
            A::RotateSecret => "identities:rotate-secret",
            A::Remove => "identities:remove",
        }
    }
}

impl KmsAction {
    /// The action of a path under `kms/` (RustFS's names and aliases).
    pub fn of(method: &Method, rest: &str) -> Option<Self> {
        use KmsAction as A;
        Some(match (method.as_str(), rest) {
            ("POST", "configure") => A::Configure,
            ("POST", "reconfigure") => A::Reconfigure,
            ("POST", "start") => A::Start,
            ("POST", "stop") => A::Stop,
            ("GET" | "POST", "status" | "service-status") => A::Status,
            ("GET", "config") => A::Config,
            ("POST", "clear-cache") => A::ClearCache,
            ("POST", "keys" | "create-key" | "key/create") => A::CreateKey,
            ("GET", "keys" | "list-keys") => A::ListKeys,
            ("DELETE" | "POST", "keys/delete") => A::DeleteKey,
            ("POST", "keys/cancel-deletion") => A::CancelKeyDeletion,
            ("POST", "keys/enable") => A::EnableKey,
            ("POST", "keys/disable") => A::DisableKey,
            ("POST", "keys/rotate") => A::RotateKey,
            ("POST", "keys/update-description") => A::UpdateKeyDescription,
            ("POST", "keys/tag") => A::TagKey,
            ("POST", "keys/untag") => A::UntagKey,
            ("POST", "generate-data-key") => A::GenerateDataKey,
            ("GET", "describe-key" | "key/status") => A::DescribeKey,
            ("GET", r) if r.starts_with("keys/") && r.len() > 5 && !r[5..].contains('/') => A::DescribeKey,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use KmsAction as A;
        match self {
            A::Configure => "kms:configure",
            A::Reconfigure => "kms:reconfigure",
            A::Start => "kms:start",
            A::Stop => "kms:stop",
            A::Status => "kms:status",
            A::Config => "kms:config",
            A::ClearCache => "kms:clear-cache",
            A::CreateKey => "kms:create-key",
            A::ListKeys => "kms:list-keys",
            A::DescribeKey => "kms:describe-key",
            A::DeleteKey => "kms:delete-key",
            A::CancelKeyDeletion => "kms:cancel-key-deletion",
            A::EnableKey => "kms:enable-key",
            A::DisableKey => "kms:disable-key",
            A::RotateKey => "kms:rotate-key",
            A::UpdateKeyDescription => "kms:update-key-description",
            A::TagKey => "kms:tag-key",
            A::UntagKey => "kms:untag-key",
            A::GenerateDataKey => "kms:generate-data-key",
        }
    }
}

impl PolicyAction {
    /// The action of a path under `policies`.
    pub fn of(method: &Method, rest: &str) -> Option<Self> {
        use PolicyAction as A;
        let rest = rest.trim_matches('/');
        Some(match (method.as_str(), rest) {
            ("GET", "") => A::List,
            ("GET", "bindings") => A::Bindings,
            ("POST", "bind") => A::Bind,
            ("POST", "unbind") => A::Unbind,
            ("POST", "rotation/run") => A::RotationRun,
            ("POST", r) if r.ends_with("/evaluate") && !r[..r.len() - 9].contains('/') => A::Evaluate,
            (_, r) if r.contains('/') || r.is_empty() => return None,
            ("PUT" | "POST", _) => A::Upload,
            ("GET", _) => A::Get,
            ("DELETE", _) => A::Delete,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use PolicyAction as A;
        match self {
            A::List => "policies:list",
            A::Bindings => "policies:bindings",
            A::Bind => "policies:bind",
            A::Unbind => "policies:unbind",
            A::RotationRun => "policies:rotation-run",
            A::Evaluate => "policies:evaluate",
            A::Upload => "policies:upload",
            A::Get => "policies:get",
            A::Delete => "policies:delete",
        }
    }
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Self::Kms(a) => a.name(),
            Self::Policies(a) => a.name(),
            Self::Identities(a) => a.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_actions_and_names_are_stable() {
        let kms = |m: Method, p: &str| KmsAction::of(&m, p).map(KmsAction::name);
        assert_eq!(kms(Method::POST, "configure"), Some("kms:configure"));
        assert_eq!(kms(Method::GET, "keys/k1"), Some("kms:describe-key"));
        assert_eq!(kms(Method::GET, "keys/k1/x"), None);
        assert_eq!(kms(Method::DELETE, "keys/delete"), Some("kms:delete-key"));
        assert_eq!(kms(Method::PUT, "configure"), None);
        let pol = |m: Method, p: &str| PolicyAction::of(&m, p).map(PolicyAction::name);
        assert_eq!(pol(Method::GET, ""), Some("policies:list"));
        assert_eq!(pol(Method::POST, "p1/evaluate"), Some("policies:evaluate"));
        assert_eq!(pol(Method::PUT, "p1"), Some("policies:upload"));
        assert_eq!(pol(Method::GET, "a/b"), None);
        let id = |m: Method, p: &str| IdentityAction::of(&m, p).map(IdentityAction::name);
        assert_eq!(id(Method::POST, ""), Some("identities:create"));
        assert_eq!(id(Method::POST, "AK1/rotate-secret"), Some("identities:rotate-secret"));
        assert_eq!(id(Method::DELETE, "AK1"), Some("identities:remove"));
        assert_eq!(id(Method::POST, "AK1/unknown"), None);
    }
}
