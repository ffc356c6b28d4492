//! The OpenAI error envelope, `{"error":{"message","type","param","code"}}`, used by every route.

use serde::{Deserialize, Serialize};

/// Wire shape of every error response (and of a mid-stream SSE error event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Name of the offending request field, when one is to blame.
    pub param: Option<String>,
    pub code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_all_four_fields_even_when_null() {
        let body = ErrorBody {
            error: ErrorDetail { message: "m".into(), kind: "invalid_request_error".into(), param: None, code: None },
        };
        let v = serde_json::to_value(&body).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"error":{"message":"m","type":"invalid_request_error","param":null,"code":null}})
        );
    }
}
