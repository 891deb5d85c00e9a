//! The OpenAPI links read as a run's data flow: which response hands which value (a created
//! document's id, its ETag) to which later request, through a collection variable.

use std::collections::BTreeMap;

use super::{Operation, js_string};

/// Where in a response a linked value is (an OpenAPI runtime expression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// `$response.body#/id`: the JSON pointer's segments.
    Body(Vec<String>),
    /// `$response.header.ETag`.
    Header(String),
}

impl Expression {
    fn parse(expression: &str) -> Option<Self> {
        if let Some(pointer) = expression.strip_prefix("$response.body#") {
            let segments = pointer
                .split('/')
                .skip(1)
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect::<Vec<_>>();
            return (!segments.is_empty()).then_some(Expression::Body(segments));
        }
        expression
            .strip_prefix("$response.header.")
            .filter(|name| !name.is_empty())
            .map(|name| Expression::Header(name.to_owned()))
    }

    /// The variable's name after the operation whose response holds it: `createItem.id`.
    fn variable(&self, source: &str) -> String {
        match self {
            Expression::Body(segments) => format!("{source}.{}", segments.join(".")),
            Expression::Header(name) => format!("{source}.{name}"),
        }
    }

    /// The value in a Postman test script.
    pub fn javascript(&self) -> String {
        match self {
            Expression::Body(segments) => segments
                .iter()
                .fold("pm.response.json()".to_owned(), |js, segment| {
                    format!("{js}[{}]", js_string(segment))
                }),
            Expression::Header(name) => format!("pm.response.headers.get({})", js_string(name)),
        }
    }
}

/// A value a response hands on, kept in a collection variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub variable: String,
    pub expression: Expression,
    /// The operations that use it.
    pub targets: Vec<String>,
}

/// A parameter of a request filled from an earlier response.
#[derive(Debug, Clone)]
pub struct Binding {
    /// `path`, `query` or `header`, as in the link (`path.id`).
    pub location: String,
    pub name: String,
    pub variable: String,
    /// The operation whose response supplies it.
    pub source: String,
}

#[derive(Debug, Default)]
pub struct Flow {
    /// By the operation whose response is captured.
    pub captures: BTreeMap<String, Vec<Capture>>,
    /// By the operation whose request uses them.
    pub bindings: BTreeMap<String, Vec<Binding>>,
    /// Links the collection cannot follow, by the operation they were meant for.
    pub unfollowed: BTreeMap<String, Vec<String>>,
}

/// Reads every link of every success response.
pub fn follow(operations: &[Operation<'_>]) -> Flow {
    let mut flow = Flow::default();
    for operation in operations {
        let responses = operation.spec["responses"].as_object();
        let links = responses
            .into_iter()
            .flatten()
            .filter(|(status, _)| status.starts_with('2'))
            .filter_map(|(_, response)| response["links"].as_object())
            .flatten();
        for (_, link) in links {
            let Some(target) = link["operationId"].as_str() else {
                continue;
            };
            for (parameter, expression) in link["parameters"].as_object().into_iter().flatten() {
                let text = expression.as_str().unwrap_or_default();
                let (Some((location, name)), Some(expression)) =
                    (parameter.split_once('.'), Expression::parse(text))
                else {
                    flow.unfollowed.entry(target.to_owned()).or_default().push(format!(
                        "the link from {} gives {parameter} as {text}, which the collection cannot follow",
                        operation.id
                    ));
                    continue;
                };
                let variable = expression.variable(operation.id);
                let captures = flow.captures.entry(operation.id.to_owned()).or_default();
                match captures.iter_mut().find(|c| c.variable == variable) {
                    Some(capture) => capture.targets.push(target.to_owned()),
                    None => captures.push(Capture {
                        variable: variable.clone(),
                        expression,
                        targets: vec![target.to_owned()],
                    }),
                }
                flow.bindings
                    .entry(target.to_owned())
                    .or_default()
                    .push(Binding {
                        location: location.to_owned(),
                        name: name.to_owned(),
                        variable,
                        source: operation.id.to_owned(),
                    });
            }
        }
    }
    flow
}

impl Flow {
    /// The variable that fills a request's parameter, if a link supplies one.
    pub fn binding(&self, operation: &str, location: &str, name: &str) -> Option<&Binding> {
        self.bindings
            .get(operation)
            .into_iter()
            .flatten()
            .find(|b| b.location == location && b.name.eq_ignore_ascii_case(name))
    }

    /// Whether the operation's request needs a value from another response.
    pub fn needs_earlier_response(&self, operation: &str) -> bool {
        self.bindings.get(operation).is_some_and(|b| !b.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_the_collection_can_follow() {
        assert_eq!(
            Expression::parse("$response.body#/id"),
            Some(Expression::Body(vec!["id".into()]))
        );
        assert_eq!(
            Expression::parse("$response.body#/a~1b/c").map(|e| e.javascript()),
            Some(r#"pm.response.json()["a/b"]["c"]"#.into())
        );
        assert_eq!(
            Expression::parse("$response.header.ETag").map(|e| e.variable("createItem")),
            Some("createItem.ETag".into())
        );
        assert_eq!(Expression::parse("$request.path.id"), None);
        assert_eq!(Expression::parse("$response.body#"), None);
    }
}
