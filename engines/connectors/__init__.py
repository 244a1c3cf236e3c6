"""What talks to upstreams, and how their data and signatures are read.

- `http`: the `http` connector (our own protocol, docs/contract.md §6, also the
  built-in `simulator`'s), the one request function every connector shares,
  and `UpstreamError` with its failure kinds;
- `rest`, `rest_paging` (pure), `rest_poll`: the `rest` connector for an
  upstream's own list API (docs/rest-connector.md);
- `mapping`: the JMESPath mappings that read keys, versions and times out of
  an upstream's records, for polls and for pushes alike;
- `schemes` (pure): the push schemes an upstream signs its webhooks with
  (beastflow, Standard Webhooks, Stripe, GitHub, Shopify; docs/push.md);
- `push_mapping`: an upstream's own webhook body read into our events
  through the source's mapping (the ingest front doors call it);
- `presets/`: one YAML file per real upstream and the loader
  (docs/presets.md).

The rest of the engines know an upstream only through these modules. Import
the module you need; this package re-exports nothing.
"""
