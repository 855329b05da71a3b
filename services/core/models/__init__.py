"""Tables. All SQL lives in each domain's queries/store module; this is only the schema.

One module per concern; every table is importable from here, and Alembic reads `Base.metadata`.
"""

from services.core.models.archive import ConsumerOffset, CrmUpdateArchive, Event, FailedEvent
from services.core.models.base import NAMING_CONVENTION, Base, Money, MoneySum
from services.core.models.coaching import CoachingSnapshot, CoachingSnapshotWeek
from services.core.models.conversations import (
    CONVERSATION_COUNTERS,
    CallAnalysis,
    ConversationRollup,
)
from services.core.models.economics import MOVEMENTS, EconomicsSettings, MrrMovement, SubscriptionAccount
from services.core.models.offboarding import TenantTombstone
from services.core.models.pipeline import (
    CHANGE_KINDS,
    ContactActivity,
    DealChange,
    DealStageStay,
    PipelineDeal,
    PipelineStage,
)
from services.core.models.privacy import ContactErasure, ContactPseudonymKey
from services.core.models.rollups import (
    CHANNEL_COUNTERS,
    REP_COUNTERS,
    ChannelDaily,
    RepDaily,
    TenantWatermark,
)
from services.core.models.state import (
    CertificationAttempt,
    ChannelSpend,
    CrmEntity,
    DataQuality,
    DealFact,
    Lead,
    Scorecard,
)
from services.core.models.tenancy import ApiKey, Rep, RepAlias, Tenant, TenantSecret, TenantSourceSettings

__all__ = [
    "CHANGE_KINDS",
    "CHANNEL_COUNTERS",
    "CONVERSATION_COUNTERS",
    "MOVEMENTS",
    "NAMING_CONVENTION",
    "REP_COUNTERS",
    "ApiKey",
    "Base",
    "CallAnalysis",
    "CertificationAttempt",
    "ChannelDaily",
    "ChannelSpend",
    "CoachingSnapshot",
    "CoachingSnapshotWeek",
    "ConsumerOffset",
    "ContactActivity",
    "ContactErasure",
    "ContactPseudonymKey",
    "ConversationRollup",
    "CrmEntity",
    "CrmUpdateArchive",
    "DataQuality",
    "DealChange",
    "DealFact",
    "DealStageStay",
    "EconomicsSettings",
    "Event",
    "FailedEvent",
    "Lead",
    "Money",
    "MoneySum",
    "MrrMovement",
    "PipelineDeal",
    "PipelineStage",
    "Rep",
    "RepAlias",
    "RepDaily",
    "Scorecard",
    "SubscriptionAccount",
    "Tenant",
    "TenantSecret",
    "TenantSourceSettings",
    "TenantTombstone",
    "TenantWatermark",
]
