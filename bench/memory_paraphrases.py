"""A paraphrase set for memory recall: (what was stored, how someone later asks for it).

Written for this benchmark: the questions avoid the stored wording where they can, so a
keyword search would miss many of them.
"""

PAIRS: list[tuple[str, str]] = [
    ("Production deploys happen on Tuesdays after the release review",
     "when do we ship new code to customers?"),
    ("Alice is allergic to peanuts", "which foods can make my colleague sick?"),
    ("The staging database password rotates every 90 days",
     "how often do the credentials for the test environment DB change?"),
    ("Use ruff for linting and formatting Python code", "what tool checks our python style?"),
    ("The CI pipeline runs on GitHub Actions with a matrix of Python 3.11 and 3.12",
     "where do our automated builds execute?"),
    ("Bob prefers tabs over spaces in Go files", "indentation preference of my teammate for golang"),
    ("The billing service times out after 30 seconds", "how long before payments requests give up?"),
    ("Our office wifi password is on the whiteboard in the kitchen",
     "where can I find the network key at work?"),
    ("Customer data must stay in EU data centers", "are we allowed to host user records in the US?"),
    ("The mobile app supports dark mode since version 4", "does the phone application have a night theme?"),
    ("Standup meeting is at 9:30 every weekday", "what time is the daily sync?"),
    ("Logs are kept for 14 days and then deleted", "how long is our log retention?"),
    ("The cat sleeps on the warm windowsill every afternoon", "where does the kitty nap after lunch?"),
    ("Invoices are exported as PDF and archived for ten years",
     "how long do we keep billing documents?"),
    ("The frontend is written in React with TypeScript", "which UI framework does the web client use?"),
    ("Redis is used as a cache in front of PostgreSQL", "what sits before the main SQL database to speed reads?"),
    ("The user session expires after 20 minutes of inactivity",
     "when do idle people get logged out?"),
    ("Carol is the on-call engineer this week", "who do I page if production breaks now?"),
    ("The API rate limit is 100 requests per minute per key",
     "how many calls can a client make each minute?"),
    ("We moved from Jenkins to GitHub Actions last spring", "what did we use for builds before?"),
    ("The marketing team launches the spring campaign in April",
     "when does the seasonal promotion start?"),
    ("Backups run nightly at 2 AM UTC", "at what hour are snapshots of the data taken?"),
    ("The design system uses an 8 pixel spacing grid", "what is the base unit for layout gaps?"),
    ("Error reports are sent to Sentry", "which service collects our crash traces?"),
    ("The project's license is MIT", "under what terms can others reuse our code?"),
    ("The search feature uses Elasticsearch", "which engine powers full-text lookup?"),
    ("Feature flags are managed in LaunchDarkly", "where do we toggle experimental functionality?"),
    ("The team lunch is every Friday at the Thai place",
     "where do we eat together at the end of the week?"),
    ("Unit tests must not touch the network or sleep",
     "rules for our automated checks regarding internet access"),
    ("The main branch is protected and needs two approvals",
     "how many reviewers must sign off before merging?"),
    ("Docker images are pushed to the company registry on every tag",
     "when are container builds published?"),
    ("The coffee machine on floor 3 is broken", "is there a working espresso maker upstairs?"),
    ("Our SLA promises 99.9 percent uptime", "what availability have we guaranteed to clients?"),
    ("Passwords are hashed with argon2", "which algorithm protects stored user secrets?"),
    ("The data warehouse is refreshed every hour from the production replica",
     "how fresh are the analytics tables?"),
    ("Dave is on parental leave until March", "when will my colleague return from looking after his baby?"),
    ("Release notes are written in the CHANGELOG.md file", "where do we document what changed per version?"),
    ("The load balancer terminates TLS", "where is HTTPS decrypted in our stack?"),
    ("Translations are managed in Crowdin", "which platform handles localization strings?"),
    ("Kubernetes pods are limited to 512 MB of memory", "how much RAM can a container use in the cluster?"),
]

#: Sentences of the kind a coding agent stores, for distractors and synthetic corpora.
TOPICS = [
    "database", "cache", "deploy", "pipeline", "frontend", "backend", "queue", "auth",
    "billing", "search", "logging", "metrics", "backup", "network", "storage", "testing",
    "release", "security", "mobile", "docs",
]
ACTIONS = [
    "was migrated to a new version", "failed during the nightly run", "needs a config change",
    "is owned by the platform team", "uses a feature flag", "was refactored last sprint",
    "has a known memory leak", "runs in a separate namespace", "is documented in the wiki",
    "was rolled back after an incident", "depends on a third-party API", "got a new dashboard",
]
DETAILS = [
    "see ticket", "according to the retro", "as decided in the design review",
    "per the incident report", "mentioned in standup", "noted by the reviewer",
]


def corpus(n: int) -> list[str]:
    """n distinct, plausible memory sentences."""
    out = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        action = ACTIONS[(i // len(TOPICS)) % len(ACTIONS)]
        detail = DETAILS[(i // (len(TOPICS) * len(ACTIONS))) % len(DETAILS)]
        out.append(f"The {topic} service {action}, {detail} #{i}")
    return out
