//! The GraphQL types as seen through introspection: enough to generate each route's operation
//! (with a full selection of the result type), coerce query parameters, and describe every type
//! as JSON Schema for the OpenAPI document.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

/// The standard introspection query, trimmed to what the generators read.
pub const INTROSPECTION: &str = r#"
query {
  __schema {
    queryType { name }
    mutationType { name }
    types {
      kind name description
      fields { name description args { name type { ...T } defaultValue } type { ...T } }
      inputFields { name description type { ...T } defaultValue }
      enumValues { name description }
    }
  }
}
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct TypeRef {
    pub kind: String,
    pub name: Option<String>,
    #[serde(rename = "ofType")]
    pub of_type: Option<Box<TypeRef>>,
}

impl TypeRef {
    pub fn non_null(&self) -> bool {
        self.kind == "NON_NULL"
    }

    /// Whether the type is a list (under an optional NON_NULL).
    pub fn is_list(&self) -> bool {
        match self.kind.as_str() {
            "NON_NULL" => self.of_type.as_ref().is_some_and(|t| t.is_list()),
            kind => kind == "LIST",
        }
    }

    /// The named type under any NON_NULL / LIST wrappers.
    pub fn named(&self) -> &str {
        match &self.of_type {
            Some(inner) => inner.named(),
            None => self.name.as_deref().unwrap_or(""),
        }
    }

    /// The type as written in a GraphQL document, e.g. `[String!]!`.
    pub fn render(&self) -> String {
        match self.kind.as_str() {
            "NON_NULL" => format!(
                "{}!",
                self.of_type
                    .as_ref()
                    .map(|t| t.render())
                    .unwrap_or_default()
            ),
            "LIST" => format!(
                "[{}]",
                self.of_type
                    .as_ref()
                    .map(|t| t.render())
                    .unwrap_or_default()
            ),
            _ => self.name.clone().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct InputValue {
    pub name: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub ty: TypeRef,
    #[serde(rename = "defaultValue")]
    pub default_value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Field {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub args: Vec<InputValue>,
    #[serde(rename = "type")]
    pub ty: TypeRef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EnumValue {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TypeDef {
    pub kind: String,
    pub name: String,
    pub description: Option<String>,
    pub fields: Option<Vec<Field>>,
    #[serde(rename = "inputFields")]
    pub input_fields: Option<Vec<InputValue>>,
    #[serde(rename = "enumValues")]
    pub enum_values: Option<Vec<EnumValue>>,
}

/// The schema's types by name, with the root operation types.
#[derive(Debug, Clone)]
pub struct Types {
    pub by_name: BTreeMap<String, TypeDef>,
    pub query: String,
    pub mutation: String,
}

impl Types {
    /// Reads the result of [`INTROSPECTION`] (the `data` object).
    pub fn from_introspection(data: &Value) -> Result<Self, String> {
        let schema = &data["__schema"];
        let types: Vec<TypeDef> =
            serde_json::from_value(schema["types"].clone()).map_err(|e| e.to_string())?;
        Ok(Self {
            by_name: types.into_iter().map(|t| (t.name.clone(), t)).collect(),
            query: schema["queryType"]["name"]
                .as_str()
                .unwrap_or("Query")
                .to_owned(),
            mutation: schema["mutationType"]["name"]
                .as_str()
                .unwrap_or("Mutation")
                .to_owned(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&TypeDef> {
        self.by_name.get(name)
    }

    pub fn root_fields(&self, root: &str) -> Vec<&Field> {
        self.get(root)
            .and_then(|t| t.fields.as_ref())
            .map(|f| f.iter().collect())
            .unwrap_or_default()
    }

    pub fn root_field(&self, root: &str, name: &str) -> Option<&Field> {
        self.root_fields(root).into_iter().find(|f| f.name == name)
    }

    pub fn field(&self, type_name: &str, field: &str) -> Option<&Field> {
        self.get(type_name)?
            .fields
            .as_ref()?
            .iter()
            .find(|f| f.name == field)
    }

    /// Every field of an object type, recursively: what REST returns for a document.
    pub fn selection(&self, type_name: &str) -> String {
        self.selection_at(type_name, 0)
    }

    fn selection_at(&self, type_name: &str, depth: usize) -> String {
        let Some(def) = self.get(type_name) else {
            return String::new();
        };
        let mut out = Vec::new();
        for field in def.fields.iter().flatten() {
            if field.name.starts_with("__") || field.args.iter().any(|a| a.ty.non_null()) {
                continue;
            }
            let named = field.ty.named();
            match self.get(named).map(|t| t.kind.as_str()) {
                // A union or interface needs per-type fragments; REST leaves such fields out.
                Some("UNION" | "INTERFACE") => {}
                Some("OBJECT") if depth < 4 => {
                    let inner = self.selection_at(named, depth + 1);
                    if !inner.is_empty() {
                        out.push(format!("{} {{ {} }}", field.name, inner));
                    }
                }
                Some("OBJECT") => {}
                _ => out.push(field.name.clone()),
            }
        }
        out.join(" ")
    }

    /// A JSON Schema for a type reference; named object, input and enum types become `$ref`s.
    pub fn schema_of(&self, ty: &TypeRef) -> Value {
        match ty.kind.as_str() {
            "NON_NULL" => ty
                .of_type
                .as_ref()
                .map(|t| self.schema_of(t))
                .unwrap_or(json!({})),
            "LIST" => {
                json!({ "type": "array", "items": ty.of_type.as_ref().map(|t| self.schema_of(t)).unwrap_or(json!({})) })
            }
            _ => self.named_schema(ty.name.as_deref().unwrap_or("")),
        }
    }

    /// The same, allowing `null` when the reference is nullable.
    pub fn nullable_schema_of(&self, ty: &TypeRef) -> Value {
        let schema = self.schema_of(ty);
        if ty.non_null() {
            schema
        } else if schema.get("$ref").is_some() {
            json!({ "anyOf": [schema, { "type": "null" }] })
        } else {
            let mut schema = schema;
            if let Some(t) = schema.get("type").cloned() {
                schema["type"] = json!([t, "null"]);
            }
            schema
        }
    }

    fn named_schema(&self, name: &str) -> Value {
        match name {
            "Int" => json!({
                "type": "integer",
                "format": "int64",
                "minimum": i64::MIN,
                "maximum": i64::MAX
            }),
            "Float" => json!({ "type": "number" }),
            "Boolean" => json!({ "type": "boolean" }),
            "String" | "ID" => json!({ "type": "string" }),
            "DateTime" => json!({ "type": "string", "format": "date-time" }),
            "JSON" => json!({}),
            other => match self.get(other).map(|t| t.kind.as_str()) {
                Some("OBJECT" | "INPUT_OBJECT" | "ENUM") => {
                    json!({ "$ref": format!("#/components/schemas/{other}") })
                }
                _ => json!({ "type": "string" }),
            },
        }
    }

    /// The component schema for a named object, input object or enum type.
    pub fn component(&self, name: &str) -> Option<Value> {
        let def = self.get(name)?;
        let mut schema = match def.kind.as_str() {
            "ENUM" => json!({
                "type": "string",
                "enum": def.enum_values.iter().flatten().map(|v| v.name.clone()).collect::<Vec<_>>(),
            }),
            "OBJECT" => {
                let mut properties = serde_json::Map::new();
                let mut required = Vec::new();
                for field in def.fields.iter().flatten() {
                    if field.args.iter().any(|a| a.ty.non_null()) {
                        continue;
                    }
                    let named = field.ty.named();
                    let kind = self.get(named).map(|t| t.kind.as_str());
                    if matches!(kind, Some("UNION" | "INTERFACE"))
                        || (kind == Some("OBJECT") && self.selection(named).is_empty())
                    {
                        continue;
                    }
                    properties.insert(
                        field.name.clone(),
                        describe(
                            self.nullable_schema_of(&field.ty),
                            field.description.as_deref(),
                        ),
                    );
                    required.push(field.name.clone());
                }
                json!({ "type": "object", "properties": properties, "required": required })
            }
            "INPUT_OBJECT" => {
                let mut properties = serde_json::Map::new();
                let mut required = Vec::new();
                for field in def.input_fields.iter().flatten() {
                    properties.insert(
                        field.name.clone(),
                        describe(
                            self.nullable_schema_of(&field.ty),
                            field.description.as_deref(),
                        ),
                    );
                    if field.ty.non_null() && field.default_value.is_none() {
                        required.push(field.name.clone());
                    }
                }
                json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
            }
            _ => return None,
        };
        if let Some(d) = &def.description {
            schema["description"] = json!(d);
        }
        Some(schema)
    }

    /// Every named type a schema refers to, transitively (for `components.schemas`).
    pub fn referenced(&self, roots: &[String]) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack: Vec<String> = roots.to_vec();
        while let Some(name) = stack.pop() {
            let Some(def) = self.get(&name) else { continue };
            if !matches!(def.kind.as_str(), "OBJECT" | "INPUT_OBJECT" | "ENUM")
                || !seen.insert(name.clone())
            {
                continue;
            }
            for field in def.fields.iter().flatten() {
                stack.push(field.ty.named().to_owned());
            }
            for field in def.input_fields.iter().flatten() {
                stack.push(field.ty.named().to_owned());
            }
        }
        seen.into_iter().collect()
    }

    /// A small example value for a type reference (required fields only, first enum value).
    pub fn example(&self, ty: &TypeRef, depth: usize) -> Value {
        match ty.kind.as_str() {
            "NON_NULL" => ty
                .of_type
                .as_ref()
                .map(|t| self.example(t, depth))
                .unwrap_or(Value::Null),
            "LIST" => json!([ty
                .of_type
                .as_ref()
                .map(|t| self.example(t, depth))
                .unwrap_or(Value::Null)]),
            _ => {
                let name = ty.name.as_deref().unwrap_or("");
                match name {
                    "Int" => json!(1),
                    "Boolean" => json!(false),
                    "DateTime" => json!("2026-01-01T00:00:00Z"),
                    "JSON" => json!({}),
                    "String" | "ID" => json!("example"),
                    other => match self.get(other) {
                        Some(def) if def.kind == "ENUM" => def
                            .enum_values
                            .iter()
                            .flatten()
                            .next()
                            .map(|v| json!(v.name))
                            .unwrap_or(Value::Null),
                        Some(def) if def.kind == "INPUT_OBJECT" && depth < 4 => {
                            let mut object = serde_json::Map::new();
                            for field in def.input_fields.iter().flatten() {
                                if field.ty.non_null() && field.default_value.is_none() {
                                    object.insert(
                                        field.name.clone(),
                                        self.example(&field.ty, depth + 1),
                                    );
                                }
                            }
                            Value::Object(object)
                        }
                        Some(def) if def.kind == "OBJECT" && depth < 3 => {
                            let mut object = serde_json::Map::new();
                            for field in def.fields.iter().flatten() {
                                if field.args.iter().any(|a| a.ty.non_null()) {
                                    continue;
                                }
                                object
                                    .insert(field.name.clone(), self.example(&field.ty, depth + 1));
                            }
                            Value::Object(object)
                        }
                        _ => Value::Null,
                    },
                }
            }
        }
    }
}

fn describe(mut schema: Value, description: Option<&str>) -> Value {
    if let Some(d) = description {
        if schema.get("$ref").is_some() {
            schema = json!({ "allOf": [schema], "description": d });
        } else {
            schema["description"] = json!(d);
        }
    }
    schema
}
