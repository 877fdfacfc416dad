"""The deployment manifests' render step: ops-files and variables applied as `bosh interpolate` does.

`opspath` parses the ops-file path language, `opsfile` applies replace/remove
operations, `variables` substitutes ((placeholders)), and `render` writes one
manifest per variant under build/manifests/.
"""
