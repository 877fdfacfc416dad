"""The pg_auto_failover timeouts and formation settings of the HA variant, in one place.

The postgres and pg-monitor jobs render their defaults from these constants,
and the HA tests run a real formation with them, so the figures a test
measures are the figures an operator gets.

Why these numbers. pg_auto_failover's defaults fail over in about 50 s: a
node is unhealthy after 20 s without a report, and the monitor then waits
``primary_demote_timeout`` (30 s) before promoting, because a primary that
is cut off but alive must first notice it is alone and stop itself
(``network_partition_timeout``, 20 s). We shorten every step, but keep that
order: the slowest possible self-fencing of an isolated primary must end
before the earliest possible promotion of the standby. `split_brain_margin_s`
computes both bounds from the constants below, term by term, and a test
requires the margin to stay positive, so a later "faster failover" tweak that
breaks the order fails the build instead of silently buying split brain.

Self-fencing is the second line of defence. The first is synchronous
replication: while both nodes are healthy every commit waits for the standby
(`NUMBER_SYNC_STANDBYS` = 0 with `REPLICATION_QUORUM` on means "any one
standby", which with two nodes is the only one), so an isolated primary can
never acknowledge a write the promoted standby does not have.

What it costs. A crashed primary is declared unhealthy after about 2 s
(refused health checks, two missed reports), then the monitor waits
`PRIMARY_DEMOTE_TIMEOUT_MS`, then promotes (about 1 to 2 s: the standby
promotes while refusing writes, then opens for them once the monitor
confirms, at its next keeper report): about 9 s without writes for a crash,
measured 8.9-9.8 s (`make bench` prints the figure). A planned switchover
costs about 1.5 s. The demote timeout could only shrink that far because the
self-fencing bound shrank with it: the walsender of a lost standby now
lingers `WAL_SENDER_TIMEOUT_MS` = 1 s, and the keeper fences as soon as a
whole second has passed without monitor and standby
(`NETWORK_PARTITION_TIMEOUT_S` = 0). Fencing that early costs no commit: with
two nodes and synchronous replication, a primary that has lost its standby
cannot acknowledge a commit until the monitor lets it go on alone, and a
primary that cannot reach the monitor never hears that it may; what is lost
is only the reads of a primary cut off from both. What is traded away is
some tolerance of a replication connection that stalls for more than a
second (the walsender drops it and the standby reconnects, commits waiting
meanwhile). Going lower still would mean shortening terms of the bound that
pg_autoctl fixes (its loop, its connect timeout) or the allowances for
clock rounding and shutdown; the margin test tells whether any change still
keeps the order.
"""

from __future__ import annotations

# -- the monitor: pgautofailover.* settings of the monitor's PostgreSQL ----------

# Health checks: the monitor connects to each node's PostgreSQL. A node is
# "bad" after MAX_RETRIES + 1 failed attempts. A refused connection (a
# crashed node) fails at once, so a dead node is bad within about
# PERIOD + MAX_RETRIES * RETRY_DELAY (2 s); a node that does not answer at
# all waits TIMEOUT per attempt (about 4 s).
HEALTH_CHECK_PERIOD_MS = 1000
HEALTH_CHECK_TIMEOUT_MS = 1000
HEALTH_CHECK_MAX_RETRIES = 2
HEALTH_CHECK_RETRY_DELAY_MS = 500

# A node is unhealthy when its keeper has not reported for this long AND its
# health check is bad. Keepers report every second, so two missed reports;
# the health-check conjunction keeps a busy-but-alive node from being failed
# over, which is what makes so short a timeout safe.
NODE_CONSIDERED_UNHEALTHY_TIMEOUT_MS = 2000

# After the standby is ready to be promoted, the monitor waits this long for
# the old primary to report that it has demoted itself; a dead or isolated
# primary never reports, so this is the wait that gives it time to self-fence.
# It is the term that orders fencing before promotion (see the module doc).
PRIMARY_DEMOTE_TIMEOUT_MS = 6000

# No failover this soon after the monitor itself (re)starts: it has not yet
# heard from the keepers. pg_auto_failover's default.
STARTUP_GRACE_PERIOD_MS = 10000

# -- the keepers: [timeout] section of each node's pg_autoctl.cfg ------------

# A primary that can reach neither the monitor nor its standby for longer
# than this demotes itself (stops PostgreSQL). The keeper compares whole
# seconds with "longer than", so 0 means "for a whole second on its clock"
# (up to one real second, the clock-granularity term below), not "at once".
# Why so short is safe for commits: see the module doc.
NETWORK_PARTITION_TIMEOUT_S = 0

# -- PostgreSQL on the nodes ----------------------------------------------------

# The keeper counts "my standby is still connected" from pg_stat_replication,
# and a silently cut-off standby stays listed until the walsender times out.
# pg_auto_failover sets 30 s; left there it would dominate the self-fencing
# time. At 1 s the walsender asks for a reply every 0.5 s: hundreds of round
# trips between AZs, but a standby stalled for a second is disconnected (it
# reconnects; commits wait until it is back).
WAL_SENDER_TIMEOUT_MS = 1000

# -- the formation -----------------------------------------------------------------

# With two nodes pg_auto_failover allows only 0 here; with REPLICATION_QUORUM
# on, 0 means synchronous_standby_names = 'ANY 1 (<the standby>)' while the
# standby is healthy, and "primary alone, asynchronous" (wait_primary) only
# after the monitor has declared the standby unhealthy.
NUMBER_SYNC_STANDBYS = 0
REPLICATION_QUORUM = True
# Both nodes may be promoted; equal priority, so no node is preferred after
# a failover (a switchover back is an operator's choice).
CANDIDATE_PRIORITY = 50

# -- fixed behaviour of pg_autoctl 2.0, used in the bounds below ----------------

# The keeper sleeps this long between rounds (PG_AUTOCTL_KEEPER_SLEEP_TIME).
KEEPER_LOOP_S = 1.0
# A keeper round that cannot reach the monitor also spends pg_autoctl's
# connect timeout (2 s; libpq rounds anything shorter up to 2 s, so it
# cannot be tuned down through PGCONNECT_TIMEOUT).
KEEPER_MONITOR_CONNECT_TIMEOUT_S = 2.0
# The keeper measures contact ages with time(2): whole seconds, so a timeout
# of N s is only seen as exceeded once up to N + 1 s have really passed.
KEEPER_CLOCK_GRANULARITY_S = 1.0
# Time for the demoting keeper's fast shutdown to close PostgreSQL to
# clients (it refuses new sessions and ends existing ones at once).
POSTGRES_STOP_ALLOWANCE_S = 1.0


def self_fence_deadline_s() -> float:
    """Latest moment, after a primary is cut off, that its PostgreSQL is stopped by its own keeper.

    The walsender of the lost standby lingers for `WAL_SENDER_TIMEOUT_MS`, and
    the keeper counts the standby as present until then; from the last
    sighting it waits `NETWORK_PARTITION_TIMEOUT_S` (plus clock rounding); the
    check runs once per loop (sleep plus a failing monitor connection); then
    PostgreSQL stops.
    """
    return (
        WAL_SENDER_TIMEOUT_MS / 1000
        + NETWORK_PARTITION_TIMEOUT_S
        + KEEPER_CLOCK_GRANULARITY_S
        + KEEPER_LOOP_S
        + KEEPER_MONITOR_CONNECT_TIMEOUT_S
        + POSTGRES_STOP_ALLOWANCE_S
    )


def earliest_promotion_s() -> float:
    """Earliest moment, after the same cut, that the monitor can promote the standby.

    The primary's last report may be one keeper loop old at the cut; the node
    must then stay silent for `NODE_CONSIDERED_UNHEALTHY_TIMEOUT_MS`, and after
    that the monitor waits the whole `PRIMARY_DEMOTE_TIMEOUT_MS`. (The health
    checks only ever add to this, so they are left out of the lower bound.)
    """
    return NODE_CONSIDERED_UNHEALTHY_TIMEOUT_MS / 1000 - KEEPER_LOOP_S + PRIMARY_DEMOTE_TIMEOUT_MS / 1000


def split_brain_margin_s() -> float:
    """How much earlier the isolated primary is fenced than the standby can be promoted (> 0)."""
    return earliest_promotion_s() - self_fence_deadline_s()


def monitor_settings() -> dict[str, str]:
    """postgresql.conf settings of the monitor's PostgreSQL."""
    return {
        "pgautofailover.health_check_period": str(HEALTH_CHECK_PERIOD_MS),
        "pgautofailover.health_check_timeout": str(HEALTH_CHECK_TIMEOUT_MS),
        "pgautofailover.health_check_max_retries": str(HEALTH_CHECK_MAX_RETRIES),
        "pgautofailover.health_check_retry_delay": str(HEALTH_CHECK_RETRY_DELAY_MS),
        "pgautofailover.node_considered_unhealthy_timeout": str(NODE_CONSIDERED_UNHEALTHY_TIMEOUT_MS),
        "pgautofailover.primary_demote_timeout": str(PRIMARY_DEMOTE_TIMEOUT_MS),
        "pgautofailover.startup_grace_period": str(STARTUP_GRACE_PERIOD_MS),
    }


def keeper_settings() -> dict[str, str]:
    """`pg_autoctl config set` keys and values for every node's keeper."""
    return {"timeout.network_partition_timeout": str(NETWORK_PARTITION_TIMEOUT_S)}


def node_postgres_settings() -> dict[str, str]:
    """postgresql.conf settings of each node, applied after pg_auto_failover's own file."""
    return {"wal_sender_timeout": f"{WAL_SENDER_TIMEOUT_MS}ms"}
