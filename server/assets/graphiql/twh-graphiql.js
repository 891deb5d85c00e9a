// Starts GraphiQL against this server's /graphql. The schema (introspection) needs no key; to
// run queries, put your API key in the Headers tab. Headers are not stored by the browser.
(function () {
  "use strict";
  var endpoint = new URL("/graphql", window.location.href).toString();
  var fetcher = GraphiQL.createFetcher({ url: endpoint });
  var defaultQuery =
    "# Put your API key in Headers below:\n" +
    "# {\"Authorization\": \"Bearer twh_...\"}\n" +
    "# then run this (Ctrl-Enter).\n" +
    "query FirstLevels {\n" +
    "  stockLevels(first: 10) {\n" +
    "    edges { node { sku locationCode onHand available committed } }\n" +
    "  }\n" +
    "}\n";
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultEditorToolsVisibility: "headers",
      shouldPersistHeaders: false,
    })
  );
})();
