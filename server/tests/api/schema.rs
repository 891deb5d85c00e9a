//! The checked-in `schema.graphql` must be exactly the schema the server serves.

use crate::support::TestApp;

#[tokio::test]
async fn checked_in_schema_matches_the_served_schema() {
    let app = TestApp::spawn().await;
    let served = twh_server::graphql::sdl_of(&twh_server::graphql::build(app.state.clone()));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let checked_in = std::fs::read_to_string(path).expect("schema.graphql is checked in");
    assert!(
        served == checked_in,
        "schema.graphql is stale: run `cargo run -p twh-server -- export-schema > schema.graphql`"
    );
    app.shutdown().await;
}
