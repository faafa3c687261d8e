//! Message templates as Meta keeps them per WABA: what a new test WABA
//! starts with, what a create request must say, and how many parameters a
//! send must give each component.

use serde_json::{Value, json};
use wameter_core::category::TemplateCategory;

use wameter_meta::graph::{GraphError, PARAMETER_COUNT, TEMPLATE_NOT_FOUND};

/// A template of a WABA.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// Meta's template id.
    pub id: String,
    /// Name (`order_update`).
    pub name: String,
    /// Language code (`en_US`).
    pub language: String,
    /// Category now (Meta may change it; sends use the current one).
    pub category: TemplateCategory,
    /// `APPROVED` for every template the sandbox holds: it approves at once.
    pub status: String,
    /// The components as created (`[{"type": "BODY", "text": …}, …]`).
    pub components: Value,
    /// `POSITIONAL` (`{{1}}`) or `NAMED` (`{{first_name}}`).
    pub parameter_format: String,
    /// The category before Meta last changed it, if it did.
    pub previous_category: Option<TemplateCategory>,
    /// A marketing template's max price (`optimization_spec.bid_amount`:
    /// per 1,000 deliveries, in the currency's minor unit), for sends
    /// through the Marketing Messages API.
    pub bid_amount: Option<u64>,
}

impl Template {
    /// Meta's sample template every new WABA has approved: `hello_world`
    /// (en_US, utility, no parameters), with Meta's text.
    pub fn hello_world(id: String) -> Template {
        Template {
            id,
            name: "hello_world".into(),
            language: "en_US".into(),
            category: TemplateCategory::Utility,
            status: "APPROVED".into(),
            components: json!([
                {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
                {"type": "BODY", "text": "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for taking the time to test with us."},
                {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"}
            ]),
            parameter_format: "POSITIONAL".into(),
            previous_category: None,
            bid_amount: None,
        }
    }

    /// The template as `GET /message_templates` lists it.
    pub fn to_json(&self) -> Value {
        let mut template = json!({
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "language": self.language,
            "status": self.status,
            "category": category_name(self.category),
            "id": self.id,
        });
        if let Some(previous) = self.previous_category {
            template["previous_category"] = json!(category_name(previous));
        }
        if let Some(bid_amount) = self.bid_amount {
            template["optimization_spec"] =
                json!({"bid_amount": bid_amount, "bid_strategy": "LOWEST_COST_WITH_BID_CAP"});
        }
        template
    }
}

/// Meta's upper-case category name.
pub fn category_name(category: TemplateCategory) -> &'static str {
    match category {
        TemplateCategory::Marketing => "MARKETING",
        TemplateCategory::Utility => "UTILITY",
        TemplateCategory::Authentication => "AUTHENTICATION",
    }
}

/// Reads Meta's category name (any case).
pub fn parse_category(text: &str) -> Option<TemplateCategory> {
    match text.to_ascii_uppercase().as_str() {
        "MARKETING" => Some(TemplateCategory::Marketing),
        "UTILITY" => Some(TemplateCategory::Utility),
        "AUTHENTICATION" => Some(TemplateCategory::Authentication),
        _ => None,
    }
}

/// A valid create request.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTemplate {
    /// Name.
    pub name: String,
    /// Language code.
    pub language: String,
    /// Category asked for.
    pub category: TemplateCategory,
    /// Components.
    pub components: Value,
    /// `POSITIONAL` (the default) or `NAMED`.
    pub parameter_format: String,
    /// `optimization_spec.bid_amount`, for a marketing template.
    pub bid_amount: Option<u64>,
}

/// Checks a `POST /message_templates` body as Meta does: a lower-case name
/// of letters, digits and underscores, a language, a known category,
/// components as an array.
pub fn parse_new(body: &Value) -> Result<NewTemplate, GraphError> {
    let text = |field: &str| {
        body.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let name = text("name").ok_or_else(|| GraphError::required("name"))?;
    if name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(GraphError::invalid(format!(
            "name `{name}`: only lower-case letters, digits and underscores, at most 512"
        )));
    }
    let language = text("language").ok_or_else(|| GraphError::required("language"))?;
    let category = text("category").ok_or_else(|| GraphError::required("category"))?;
    let category = parse_category(category).ok_or_else(|| {
        GraphError::invalid(format!(
            "category `{category}`: must be MARKETING, UTILITY or AUTHENTICATION"
        ))
    })?;
    let components = match body.get("components") {
        None => json!([]),
        Some(Value::Array(items)) => Value::Array(items.clone()),
        Some(_) => return Err(GraphError::invalid("components must be an array")),
    };
    let parameter_format = match text("parameter_format").map(str::to_ascii_uppercase) {
        None => "POSITIONAL".to_string(),
        Some(format) if format == "POSITIONAL" || format == "NAMED" => format,
        Some(format) => {
            return Err(GraphError::invalid(format!(
                "parameter_format `{format}`: must be POSITIONAL or NAMED"
            )));
        }
    };
    let bid_amount = match body.get("optimization_spec") {
        None | Some(Value::Null) => None,
        Some(spec) => {
            if category != TemplateCategory::Marketing {
                return Err(GraphError::invalid(
                    "optimization_spec: only a MARKETING template has a max price",
                ));
            }
            match spec.get("bid_strategy").and_then(Value::as_str) {
                None | Some("LOWEST_COST_WITH_BID_CAP") => {}
                Some(other) => {
                    return Err(GraphError::invalid(format!(
                        "optimization_spec.bid_strategy `{other}`: must be LOWEST_COST_WITH_BID_CAP"
                    )));
                }
            }
            // An int32 above zero, in the currency's minor unit per 1,000
            // deliveries (USD 0.05 → 5000).
            match spec.get("bid_amount").and_then(Value::as_u64) {
                Some(bid) if bid > 0 && bid <= i32::MAX as u64 => Some(bid),
                _ => {
                    return Err(GraphError::invalid(
                        "optimization_spec.bid_amount: a positive whole number (minor units per 1,000 deliveries)",
                    ));
                }
            }
        }
    };
    Ok(NewTemplate {
        name: name.into(),
        language: language.into(),
        category,
        components,
        parameter_format,
        bid_amount,
    })
}

/// Distinct `{{…}}` placeholders in a text (`{{1}}`, `{{first_name}}`).
fn placeholders(text: &str) -> usize {
    placeholder_names(text).len()
}

/// The distinct names between `{{` and `}}`, in order: `1`, `2`… for a
/// positional template, `first_name`… for a named one.
fn placeholder_names(text: &str) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + 2 + len].trim();
        if !seen.contains(&name) {
            seen.push(name);
        }
        rest = &rest[start + 2 + len + 2..];
    }
    seen
}

/// The parameters a send must give each component of a template:
/// `("header", n)`, `("body", n)`, `("button 0", n)`…
fn expected(components: &Value) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for component in components.as_array().into_iter().flatten() {
        let kind = component
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let text = component
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match kind.as_str() {
            "header" => {
                let format = component
                    .get("format")
                    .and_then(Value::as_str)
                    .unwrap_or("TEXT")
                    .to_ascii_uppercase();
                // A media header takes its image, video or document at send time.
                let count = if matches!(format.as_str(), "IMAGE" | "VIDEO" | "DOCUMENT") {
                    1
                } else {
                    placeholders(text)
                };
                out.push(("header".into(), count));
            }
            "body" => out.push(("body".into(), placeholders(text))),
            "buttons" => {
                for (index, button) in component
                    .get("buttons")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let url = button
                        .get("url")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let count = placeholders(url);
                    if count > 0 {
                        out.push((format!("button {index}"), count));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The parameters a send request gives each component.
fn given(components: Option<&Value>) -> Result<Vec<(String, usize)>, GraphError> {
    let mut out: Vec<(String, usize)> = Vec::new();
    let Some(components) = components else {
        return Ok(out);
    };
    let items = components
        .as_array()
        .ok_or_else(|| GraphError::invalid("template.components must be an array"))?;
    for (at, component) in items.iter().enumerate() {
        let kind = component
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| GraphError::required(&format!("template.components[{at}].type")))?
            .to_ascii_lowercase();
        let count = match component.get("parameters") {
            None => 0,
            Some(Value::Array(parameters)) => parameters.len(),
            Some(_) => {
                return Err(GraphError::invalid(format!(
                    "template.components[{at}].parameters must be an array"
                )));
            }
        };
        let key = match kind.as_str() {
            "button" => {
                let index = match component.get("index") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => {
                        return Err(GraphError::required(&format!(
                            "template.components[{at}].index"
                        )));
                    }
                };
                format!("button {index}")
            }
            "header" | "body" => kind,
            other => {
                return Err(GraphError::invalid(format!(
                    "template.components[{at}].type `{other}`: must be header, body or button"
                )));
            }
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += count,
            None => out.push((key, count)),
        }
    }
    Ok(out)
}

/// Checks a send's `template.components` against the template, the way
/// Meta's 132000 does: every component's parameter count must match.
pub fn check_parameters(
    template: &Template,
    request_components: Option<&Value>,
) -> Result<(), GraphError> {
    let expected = expected(&template.components);
    let given = given(request_components)?;
    let count = |list: &[(String, usize)], key: &str| {
        list.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n)
    };
    let mut keys: Vec<&str> = expected
        .iter()
        .chain(given.iter())
        .map(|(k, _)| k.as_str())
        .collect();
    keys.dedup();
    for key in keys {
        let (want, got) = (count(&expected, key), count(&given, key));
        if want != got {
            return Err(parameter_mismatch(format!(
                "{key}: number of localizable_params ({got}) does not match the expected number of params ({want})"
            )));
        }
    }
    check_parameter_names(template, request_components)
}

/// Meta's 132000, which it gives for every parameter a send gets wrong.
fn parameter_mismatch(details: String) -> GraphError {
    GraphError::new(
        PARAMETER_COUNT,
        "Number of parameters does not match the expected number of params",
        details,
    )
}

/// Named parameters by the template's own format: a `POSITIONAL` template
/// takes none, and every text parameter of a `NAMED` template's header or
/// body names one of its placeholders, as Meta checks them (132000).
fn check_parameter_names(
    template: &Template,
    request_components: Option<&Value>,
) -> Result<(), GraphError> {
    let named = template.parameter_format.eq_ignore_ascii_case("NAMED");
    for component in request_components
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = component
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let texts: Vec<&str> = template
            .components
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case(&kind))
            })
            .filter_map(|c| c.get("text").and_then(Value::as_str))
            .collect();
        for parameter in component
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = parameter.get("parameter_name").and_then(Value::as_str);
            match (named, name) {
                (false, Some(name)) => {
                    return Err(parameter_mismatch(format!(
                        "{kind}: parameter_name `{name}` given to template {} whose parameter_format is POSITIONAL",
                        template.name
                    )));
                }
                (true, None)
                    if matches!(kind.as_str(), "header" | "body")
                        && parameter.get("type").and_then(Value::as_str) == Some("text") =>
                {
                    return Err(parameter_mismatch(format!(
                        "{kind}: template {} is NAMED; every text parameter needs its parameter_name",
                        template.name
                    )));
                }
                (true, Some(name))
                    if !texts
                        .iter()
                        .any(|text| placeholder_names(text).contains(&name)) =>
                {
                    return Err(parameter_mismatch(format!(
                        "{kind}: template {} has no parameter named `{name}`",
                        template.name
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The review states a template can be in (Meta's `status`).
pub const STATUSES: [&str; 5] = ["APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED"];

/// Only an approved template can be sent: Meta answers 132015 for a paused
/// one, 132016 for a disabled one, and 132001 for one not (yet) approved.
pub fn check_sendable(template: &Template) -> Result<(), GraphError> {
    let details = |what: &str| {
        format!(
            "template {} ({}) is {what}",
            template.name, template.language
        )
    };
    match template.status.as_str() {
        "APPROVED" => Ok(()),
        "PAUSED" => Err(GraphError::new(
            132_015,
            "Template is Paused",
            details("paused"),
        )),
        "DISABLED" => Err(GraphError::new(
            132_016,
            "Template is Disabled",
            details("disabled"),
        )),
        other => Err(untranslated(details(&format!(
            "{} (not approved)",
            other.to_ascii_lowercase()
        )))),
    }
}

/// Meta's 132001 for a name or language the WABA does not have.
pub fn not_found(name: &str, language: &str) -> GraphError {
    untranslated(format!(
        "template name ({name}) does not exist in {language}"
    ))
}

/// Meta's 132001, which it gives for every template it will not send in
/// the language asked for.
fn untranslated(details: String) -> GraphError {
    GraphError::new(
        TEMPLATE_NOT_FOUND,
        "Template name does not exist in the translation",
        details,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(components: Value) -> Template {
        Template {
            components,
            ..Template::hello_world("1".into())
        }
    }

    #[test]
    fn placeholders_are_counted_once_each() {
        assert_eq!(placeholders("Hi {{1}}, order {{2}} ({{1}})"), 2);
        assert_eq!(placeholders("Hi {{first_name}}"), 1);
        assert_eq!(placeholders("no parameters {{"), 0);
    }

    #[test]
    fn hello_world_takes_no_parameters() {
        let hello = Template::hello_world("1".into());
        assert_eq!(check_parameters(&hello, None), Ok(()));
        let error = check_parameters(
            &hello,
            Some(&json!([{"type": "body", "parameters": [{"type": "text", "text": "x"}]}])),
        )
        .unwrap_err();
        assert_eq!(error.code, PARAMETER_COUNT);
        assert_eq!(
            error.details,
            "body: number of localizable_params (1) does not match the expected number of params (0)"
        );
    }

    #[test]
    fn every_component_must_match() {
        let order = template(json!([
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Order {{1}} ships {{2}}"},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "url": "https://x/{{1}}"}]}
        ]));
        let image = json!({"type": "image", "image": {"link": "https://x/a.jpg"}});
        let text = json!({"type": "text", "text": "1"});
        let full = json!([
            {"type": "header", "parameters": [image]},
            {"type": "body", "parameters": [text, text]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [text]}
        ]);
        assert_eq!(check_parameters(&order, Some(&full)), Ok(()));
        let short = json!([{"type": "header", "parameters": [image]}, {"type": "body", "parameters": [text, text]}]);
        assert!(
            check_parameters(&order, Some(&short))
                .unwrap_err()
                .details
                .starts_with("button 0:")
        );
        assert!(
            check_parameters(&order, None)
                .unwrap_err()
                .details
                .starts_with("header:")
        );
    }

    #[test]
    fn create_requests_are_checked() {
        let ok = parse_new(&json!({"name": "order_update", "language": "en_US", "category": "utility", "components": []})).unwrap();
        assert_eq!(ok.category, TemplateCategory::Utility);
        assert_eq!(
            parse_new(&json!({"language": "en_US", "category": "UTILITY"}))
                .unwrap_err()
                .message,
            "(#100) The parameter name is required."
        );
        assert!(
            parse_new(&json!({"name": "Order Update", "language": "en_US", "category": "UTILITY"}))
                .is_err()
        );
        assert!(
            parse_new(&json!({"name": "x", "language": "en_US", "category": "SERVICE"})).is_err()
        );
    }

    #[test]
    fn named_parameters_follow_the_templates_own_format() {
        let positional = template(json!([{"type": "BODY", "text": "Order {{1}}"}]));
        let with_name = json!([{"type": "body", "parameters": [{"type": "text", "parameter_name": "order", "text": "7"}]}]);
        let plain = json!([{"type": "body", "parameters": [{"type": "text", "text": "7"}]}]);
        assert_eq!(check_parameters(&positional, Some(&plain)), Ok(()));
        assert!(
            check_parameters(&positional, Some(&with_name))
                .unwrap_err()
                .details
                .contains("POSITIONAL")
        );

        let named = Template {
            parameter_format: "NAMED".into(),
            ..template(json!([{"type": "BODY", "text": "Order {{order}}"}]))
        };
        assert_eq!(check_parameters(&named, Some(&with_name)), Ok(()));
        assert!(
            check_parameters(&named, Some(&plain))
                .unwrap_err()
                .details
                .contains("needs its parameter_name")
        );
        let wrong = json!([{"type": "body", "parameters": [{"type": "text", "parameter_name": "orden", "text": "7"}]}]);
        assert!(
            check_parameters(&named, Some(&wrong))
                .unwrap_err()
                .details
                .contains("no parameter named `orden`")
        );
    }
}
