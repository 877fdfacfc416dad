"""The Ops Manager tile: tile.yml checked and packed into build/<name>-<version>.pivotal.

What comes from tile-generator (the ecosystem's tool, PyPI `tile-generator`)
and what is our own:

- Its format is used as it is documented: tile.yml's top-level fields (name,
  label, description, metadata_version, stemcell_criteria, update,
  requires_product_versions, purge_service_brokers, properties, forms with
  their properties and option_templates) and `bosh-release` packages whose
  `jobs` are job types (instance groups) with templates, instance_definition,
  memory / disks, lifecycle errand, post_deploy / pre_delete and manifest. Two
  additions are marked in tile.yml: top-level `variables` (Ops Manager
  metadata's CredHub variables, passed through) and a package's
  `jobs_in_release`, naming the jobs of a release the build may not have.
- Its code is not used. Version 15.2.0 installs on Python 3 but does not fit
  an offline, deterministic build: reading tile.yml calls the stemcell look-up
  on the network even when the version is pinned (the default is computed
  eagerly), it builds its own BOSH release with the bosh CLI rather than pack
  ours, the .pivotal carries file mtimes and build times, its history file
  changes on every build, `purge_service_brokers` defaults to true, broker
  errands shell out to a downloaded cf CLI (ours call the Cloud Controller v3
  API from the release's own errand jobs), and every tile gets CF-app
  properties (org, space, ...) it has no use for.
- Our own instead: reading tile.yml with line numbers (source), the metadata
  check (check, accessors), reading release tarballs (releases), the
  translation to Ops Manager metadata following tile-generator's mapping for
  bosh-release packages (metadata), the deterministic zip (pivotal), a drawn
  icon (icon), and the build itself (build, cli).
"""
