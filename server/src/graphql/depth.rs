//! How deep a query nests, counted apart for data and for introspection: deep data queries are
//! refused, while the standard introspection query every GraphQL tool sends always passes.

use std::collections::HashMap;

use async_graphql::parser::types::{
    ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned};

/// Introspection is a fixed, cheap walk of the schema; graphql-js's `getIntrospectionQuery`
/// nests 13 levels (16 with deeper type references), so this bound leaves room and still
/// refuses a runaway `ofType { ofType { … } }`.
pub const INTROSPECTION_MAX_DEPTH: usize = 24;

/// How many of `fields`, `inputFields`, `interfaces` and `possibleTypes` may nest on one
/// introspection path (graphql-js's rule too): each multiplies the answer by the schema's
/// size, so `types { fields { type { fields { … } } } }` would grow without bound within the
/// depth limit. The standard query nests one.
pub const INTROSPECTION_MAX_LISTS: usize = 2;

fn multiplies(name: &str) -> bool {
    matches!(
        name,
        "fields" | "inputFields" | "interfaces" | "possibleTypes"
    )
}

/// The deepest path of a document's operations, in fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    /// Paths of data fields (and `__typename`).
    pub data: usize,
    /// Paths through `__schema` or `__type`.
    pub introspection: usize,
    /// Most schema-sized lists (`fields`, …) nested on one introspection path.
    pub introspection_lists: usize,
}

impl Depth {
    fn max(self, other: Depth) -> Depth {
        Depth {
            data: self.data.max(other.data),
            introspection: self.introspection.max(other.introspection),
            introspection_lists: self.introspection_lists.max(other.introspection_lists),
        }
    }
}

/// Measures every operation of the document; fragments are measured once each, so a document
/// that spreads fragments many times over costs no more than its size to measure.
pub fn measure(doc: &ExecutableDocument) -> Depth {
    let mut walker = Walker {
        fragments: &doc.fragments,
        measured: HashMap::new(),
        active: Vec::new(),
    };
    doc.operations
        .iter()
        .map(|(_, op)| walker.selection_set(&op.node.selection_set.node, false))
        .fold(Depth::default(), Depth::max)
}

struct Walker<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    measured: HashMap<(&'a Name, bool), Depth>,
    /// Fragments being measured on the current path: a cycle is the validator's to report.
    active: Vec<&'a Name>,
}

impl<'a> Walker<'a> {
    /// The depth below a selection set; `inside` is true under `__schema` or `__type`.
    fn selection_set(&mut self, set: &'a SelectionSet, inside: bool) -> Depth {
        let mut depth = Depth::default();
        for selection in &set.items {
            let below = match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.name.node.as_str();
                    let inside = inside || name == "__schema" || name == "__type";
                    let child = self.selection_set(&field.selection_set.node, inside);
                    if inside {
                        Depth {
                            data: 0,
                            introspection: child.introspection.max(child.data) + 1,
                            introspection_lists: child.introspection_lists
                                + usize::from(multiplies(name)),
                        }
                    } else {
                        Depth {
                            data: child.data + 1,
                            introspection: match child.introspection {
                                0 => 0,
                                n => n + 1,
                            },
                            introspection_lists: child.introspection_lists,
                        }
                    }
                }
                Selection::InlineFragment(inline) => {
                    self.selection_set(&inline.node.selection_set.node, inside)
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(&spread.node.fragment_name.node, inside)
                }
            };
            depth = depth.max(below);
        }
        depth
    }

    fn fragment(&mut self, name: &'a Name, inside: bool) -> Depth {
        if let Some(depth) = self.measured.get(&(name, inside)) {
            return *depth;
        }
        let Some(fragment) = self.fragments.get(name) else {
            return Depth::default();
        };
        if self.active.contains(&name) {
            return Depth::default();
        }
        self.active.push(name);
        let depth = self.selection_set(&fragment.node.selection_set.node, inside);
        self.active.pop();
        self.measured.insert((name, inside), depth);
        depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(query: &str) -> Depth {
        measure(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    #[test]
    fn data_and_introspection_are_counted_apart() {
        assert_eq!(
            depth("{ a { b { c } } }"),
            Depth {
                data: 3,
                introspection: 0,
                introspection_lists: 0
            }
        );
        assert_eq!(
            depth("{ __schema { types { fields { name } } } a }"),
            Depth {
                data: 1,
                introspection: 4,
                introspection_lists: 1
            }
        );
        assert_eq!(
            depth("{ __type(name: \"X\") { name } __typename }"),
            Depth {
                data: 1,
                introspection: 2,
                introspection_lists: 0
            }
        );
    }

    #[test]
    fn fragments_count_where_they_are_spread() {
        let query = "query { a { ...F } } fragment F on T { b { c { d } } }";
        assert_eq!(depth(query).data, 4);
        let query = "query { __schema { ...S } } fragment S on __Schema { types { ...T } } \
                     fragment T on __Type { name ofType { name } }";
        assert_eq!(
            depth(query),
            Depth {
                data: 0,
                introspection: 4,
                introspection_lists: 0
            }
        );
        let inline = "{ a { ... on T { b { c } } } }";
        assert_eq!(depth(inline).data, 3);
    }

    #[test]
    fn schema_sized_lists_are_counted_along_a_path() {
        let nested = "{ __schema { types { fields { type { fields { type { interfaces { name } } } } } } } }";
        assert_eq!(depth(nested).introspection_lists, 3);
        let side_by_side =
            "{ __schema { types { fields { name } inputFields { name } interfaces { name } } } }";
        assert_eq!(depth(side_by_side).introspection_lists, 1);
    }

    #[test]
    fn a_fragment_cycle_does_not_loop() {
        let query = "{ a { ...F } } fragment F on T { b { ...G } } fragment G on T { c { ...F } }";
        assert_eq!(depth(query).data, 3);
    }

    #[test]
    fn many_spreads_of_one_fragment_are_measured_once() {
        // 30 fragments each spreading the next twice: 2^30 paths if walked naively.
        let mut query = String::from("{ a { ...F0 } } ");
        for i in 0..30 {
            query.push_str(&format!(
                "fragment F{i} on T {{ x: b {{ ...F{n} }} y: b {{ ...F{n} }} }} ",
                n = i + 1
            ));
        }
        query.push_str("fragment F30 on T { leaf }");
        assert_eq!(depth(&query).data, 32);
    }
}
