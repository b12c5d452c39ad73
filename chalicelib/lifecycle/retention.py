"""Which tags and manifests of one repository retention removes: pure decisions, zot's semantics.

With no policies, untagged manifests go (unless an index or artifact uses them) and every tag
stays. A repository takes the first policy whose `repositories` globs match it; with policies
configured, a repository no policy matches keeps everything. Once a policy has `keepTags` rules,
tags no rule keeps are removed. Nothing pushed within `delay` is removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chalicelib.config.schema import KeepTags, Retention, RetentionPolicy

DEFAULT_POLICY = RetentionPolicy(repositories=["**"], deleteUntagged=True, deleteReferrers=False)


@dataclass(frozen=True)
class ManifestFacts:
    digest: str
    pushed: int
    uses: int = 0  # indexes in the repository that refer to it
    subject: str | None = None
    tagged: int = 0  # tag writes so far: GC's delete is conditional on it, so a tag written after this read saves it


@dataclass(frozen=True)
class TagFacts:
    name: str
    digest: str
    pushed: int


@dataclass
class Decision:
    tags: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)


def glob_matches(pattern: str, name: str) -> bool:
    """zot's globs: `*` stays within one path component, `**` crosses them."""
    regex = re.escape(pattern).replace(r"\*\*", "\0").replace(r"\*", "[^/]*").replace("\0", ".*")
    return re.fullmatch(regex, name) is not None


def policy_for(repo: str, retention: Retention) -> RetentionPolicy | None:
    if not retention.policies:
        return DEFAULT_POLICY
    return next((p for p in retention.policies if any(glob_matches(g, repo) for g in p.repositories)), None)


def _kept_by(rule: KeepTags, tags: list[TagFacts], now: float) -> set[str]:
    matching = [t for t in tags if any(re.search(p, t.name) for p in rule.patterns)]
    if rule.pushedWithin is not None:
        matching = [t for t in matching if t.pushed >= now - rule.pushedWithin]
    if rule.mostRecentlyPushedCount is not None:
        matching = sorted(matching, key=lambda t: t.pushed, reverse=True)[: rule.mostRecentlyPushedCount]
    return {t.name for t in matching}


def decide(repo: str, manifests: list[ManifestFacts], tags: list[TagFacts], retention: Retention, now: float) -> Decision:
    """What to remove now; a manifest removed here may free its children for the next pass."""
    policy = policy_for(repo, retention)
    decision = Decision()
    if policy is None:
        return decision
    settled = now - retention.delay
    if policy.keepTags:
        kept = set().union(*(_kept_by(rule, tags, now) for rule in policy.keepTags))
        decision.tags = sorted(t.name for t in tags if t.name not in kept and t.pushed < settled)
    tagged = {t.digest for t in tags if t.name not in decision.tags}
    present = {m.digest for m in manifests}
    subjects = {m.subject for m in manifests if m.subject}
    for manifest in manifests:
        if manifest.digest in tagged or manifest.uses > 0 or manifest.pushed >= settled:
            continue
        if manifest.subject:
            if policy.deleteReferrers and manifest.subject not in present:
                decision.manifests.append(manifest.digest)
        elif policy.deleteUntagged and manifest.digest not in subjects:
            decision.manifests.append(manifest.digest)
    return decision
