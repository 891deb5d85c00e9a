//! The conventional key order of an OpenAPI document (`openapi`, `info`, `servers`, `tags`,
//! `paths`, `components`; an operation's tags and summary before its responses), which
//! serde_json's sorted maps lose; the written documents are rebuilt in this order.

use serde_json::Value;
use serde_norway::{Mapping, Value as Yaml};

/// What a JSON value is in the document, which decides the order of its keys.
#[derive(Debug, Clone, Copy)]
enum Node {
    /// An OpenAPI object with known fields.
    Object(Kind),
    /// A map from names (paths, statuses, media types, schema names) to objects of one kind;
    /// the names keep their sorted order.
    Map(Kind),
    /// A list of objects of one kind.
    List(Kind),
    /// Anything else (examples, enums, link parameters): kept as it is.
    Data,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Document,
    Info,
    Server,
    Tag,
    PathItem,
    Operation,
    Parameter,
    RequestBody,
    MediaType,
    Response,
    Header,
    Link,
    Components,
    SecurityScheme,
    Schema,
}

use Kind::*;
use Node::{Data, List, Map, Object};

/// The fields of each kind in the order they are written, with what each holds. Fields not
/// listed follow them, in sorted order, as data.
fn fields(kind: Kind) -> &'static [(&'static str, Node)] {
    match kind {
        Document => &[
            ("openapi", Data),
            ("info", Object(Info)),
            ("servers", List(Server)),
            ("tags", List(Tag)),
            ("paths", Map(PathItem)),
            ("webhooks", Map(PathItem)),
            ("components", Object(Components)),
            ("security", Data),
        ],
        Info => &[
            ("title", Data),
            ("summary", Data),
            ("description", Data),
            ("version", Data),
        ],
        Server => &[("url", Data), ("description", Data), ("variables", Data)],
        Tag => &[("name", Data), ("description", Data)],
        PathItem => &[
            ("summary", Data),
            ("description", Data),
            ("parameters", List(Parameter)),
            ("get", Object(Operation)),
            ("put", Object(Operation)),
            ("post", Object(Operation)),
            ("delete", Object(Operation)),
            ("options", Object(Operation)),
            ("head", Object(Operation)),
            ("patch", Object(Operation)),
            ("trace", Object(Operation)),
        ],
        Operation => &[
            ("tags", Data),
            ("summary", Data),
            ("description", Data),
            ("operationId", Data),
            ("parameters", List(Parameter)),
            ("requestBody", Object(RequestBody)),
            ("responses", Map(Response)),
            ("deprecated", Data),
            ("security", Data),
        ],
        Parameter => &[
            ("name", Data),
            ("in", Data),
            ("description", Data),
            ("required", Data),
            ("deprecated", Data),
            ("schema", Object(Schema)),
            ("example", Data),
        ],
        RequestBody => &[
            ("description", Data),
            ("required", Data),
            ("content", Map(MediaType)),
        ],
        MediaType => &[
            ("schema", Object(Schema)),
            ("example", Data),
            ("examples", Data),
        ],
        Response => &[
            ("description", Data),
            ("headers", Map(Header)),
            ("content", Map(MediaType)),
            ("links", Map(Link)),
        ],
        Header => &[
            ("description", Data),
            ("required", Data),
            ("schema", Object(Schema)),
        ],
        Link => &[
            ("operationId", Data),
            ("description", Data),
            ("parameters", Data),
            ("requestBody", Data),
        ],
        Components => &[
            ("schemas", Map(Schema)),
            ("responses", Map(Response)),
            ("parameters", Map(Parameter)),
            ("requestBodies", Map(RequestBody)),
            ("headers", Map(Header)),
            ("securitySchemes", Map(SecurityScheme)),
            ("links", Map(Link)),
        ],
        SecurityScheme => &[
            ("type", Data),
            ("description", Data),
            ("name", Data),
            ("in", Data),
            ("scheme", Data),
            ("bearerFormat", Data),
        ],
        Schema => &[
            ("$ref", Data),
            ("title", Data),
            ("type", Data),
            ("format", Data),
            ("description", Data),
            ("enum", Data),
            ("const", Data),
            ("default", Data),
            ("minimum", Data),
            ("maximum", Data),
            ("minLength", Data),
            ("maxLength", Data),
            ("pattern", Data),
            ("items", Object(Schema)),
            ("properties", Map(Schema)),
            ("required", Data),
            ("additionalProperties", Object(Schema)),
            ("anyOf", List(Schema)),
            ("oneOf", List(Schema)),
            ("allOf", List(Schema)),
            ("not", Object(Schema)),
            ("example", Data),
        ],
    }
}

/// The document as a YAML value whose maps are in the conventional order.
pub fn document(document: &Value) -> Yaml {
    node(document, Object(Document))
}

fn node(value: &Value, shape: Node) -> Yaml {
    match (value, shape) {
        (Value::Object(object), Object(kind)) => {
            let known = fields(kind);
            let mut mapping = Mapping::new();
            for (key, child) in known {
                if let Some(value) = object.get(*key) {
                    mapping.insert(Yaml::from(*key), node(value, *child));
                }
            }
            for (key, value) in object {
                if !known.iter().any(|(k, _)| k == key) {
                    mapping.insert(Yaml::from(key.as_str()), node(value, Data));
                }
            }
            Yaml::Mapping(mapping)
        }
        (Value::Object(object), Map(kind)) => Yaml::Mapping(
            object
                .iter()
                .map(|(key, value)| (Yaml::from(key.as_str()), node(value, Object(kind))))
                .collect(),
        ),
        (Value::Array(items), List(kind)) => {
            Yaml::Sequence(items.iter().map(|v| node(v, Object(kind))).collect())
        }
        (Value::Object(object), _) => Yaml::Mapping(
            object
                .iter()
                .map(|(key, value)| (Yaml::from(key.as_str()), node(value, Data)))
                .collect(),
        ),
        (Value::Array(items), _) => Yaml::Sequence(items.iter().map(|v| node(v, Data)).collect()),
        (Value::Null, _) => Yaml::Null,
        (Value::Bool(b), _) => Yaml::Bool(*b),
        (Value::String(s), _) => Yaml::String(s.clone()),
        (Value::Number(n), _) => Yaml::Number(if let Some(i) = n.as_i64() {
            i.into()
        } else if let Some(u) = n.as_u64() {
            u.into()
        } else {
            n.as_f64().unwrap_or_default().into()
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn keys(value: &Yaml) -> Vec<&str> {
        value
            .as_mapping()
            .map(|m| m.keys().filter_map(|k| k.as_str()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn conventional_order_at_every_level_and_data_left_as_it_is() {
        let doc = json!({
            "components": { "schemas": { "B": { "type": "object", "required": ["z"], "properties": { "z": { "type": "string", "description": "d" } } }, "A": {} } },
            "info": { "version": "1", "title": "t" },
            "openapi": "3.1.0",
            "paths": { "/b": {}, "/a": { "post": {}, "get": {
                "responses": { "200": { "description": "ok", "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/B" },
                    "example": { "type": "data", "properties": 1, "a": 2 }
                } } } },
                "operationId": "getA",
                "tags": ["A"],
                "summary": "s"
            } } },
            "security": [],
            "servers": [{ "url": "/" }],
            "tags": [{ "name": "A" }],
        });
        let ordered = document(&doc);
        assert_eq!(
            keys(&ordered),
            [
                "openapi",
                "info",
                "servers",
                "tags",
                "paths",
                "components",
                "security"
            ]
        );
        assert_eq!(keys(&ordered["info"]), ["title", "version"]);
        assert_eq!(keys(&ordered["paths"]), ["/a", "/b"]);
        assert_eq!(keys(&ordered["paths"]["/a"]), ["get", "post"]);
        let get = &ordered["paths"]["/a"]["get"];
        assert_eq!(keys(get), ["tags", "summary", "operationId", "responses"]);
        let media = &get["responses"]["200"]["content"]["application/json"];
        assert_eq!(keys(media), ["schema", "example"]);
        assert_eq!(keys(&media["example"]), ["a", "properties", "type"]);
        let b = &ordered["components"]["schemas"]["B"];
        assert_eq!(keys(b), ["type", "properties", "required"]);
        assert_eq!(keys(&b["properties"]["z"]), ["type", "description"]);
    }
}
