"""runtime: durable saga workflows, events, subscribers and cron jobs for asyncio backends."""

from runtime.client import Client, SyncClient
from runtime.container import Container
from runtime.errors import (
    ConfigError,
    DatabaseNotFoundError,
    DatabaseReplacedError,
    DefinitionError,
    DuplicateStepError,
    HandlerTimeoutError,
    InputValidationError,
    InvalidTransitionError,
    LeaseLostError,
    NonDeterminismError,
    NotConfiguredError,
    ReferenceMisuseError,
    RunFailed,
    RunNotFoundError,
    RuntimeBaseError,
    SchemaVersionError,
    SerializationError,
    StepFailed,
    StepOutsideWorkflowError,
    StepTimeoutError,
    StoreError,
    UnknownServiceError,
    UnknownWorkflowError,
)
from runtime.log import configure_logging
from runtime.models import RunRecord, RunStatus, StepError, StepRecord, StepStatus
from runtime.runs import RunHandle
from runtime.sdk.composition import (
    CompositionWorkflow,
    WorkflowResponse,
    create_workflow,
    parallelize,
    transform,
    when,
)
from runtime.sdk.definitions import WorkflowDefinition
from runtime.sdk.durable import DurableWorkflow, WorkflowContext, workflow
from runtime.sdk.refs import Ref
from runtime.sdk.running import BoundWorkflow, WorkflowResult
from runtime.sdk.specs import (
    Event,
    Job,
    JobConfig,
    Schedule,
    Subscriber,
    SubscriberArgs,
    SubscriberConfig,
)
from runtime.sdk.steps import StepContext, StepDefinition, StepResponse, create_step
from runtime.service import Runtime
from runtime.store.base import RunPage
from runtime.workflows_api import Workflows

__all__ = [
    "BoundWorkflow",
    "Client",
    "CompositionWorkflow",
    "ConfigError",
    "Container",
    "DatabaseNotFoundError",
    "DatabaseReplacedError",
    "DefinitionError",
    "DuplicateStepError",
    "DurableWorkflow",
    "Event",
    "HandlerTimeoutError",
    "InputValidationError",
    "InvalidTransitionError",
    "Job",
    "JobConfig",
    "LeaseLostError",
    "NonDeterminismError",
    "NotConfiguredError",
    "Ref",
    "ReferenceMisuseError",
    "RunFailed",
    "RunHandle",
    "RunNotFoundError",
    "RunPage",
    "RunRecord",
    "RunStatus",
    "Runtime",
    "RuntimeBaseError",
    "Schedule",
    "SchemaVersionError",
    "SerializationError",
    "StepContext",
    "StepDefinition",
    "StepError",
    "StepFailed",
    "StepOutsideWorkflowError",
    "StepRecord",
    "StepResponse",
    "StepStatus",
    "StepTimeoutError",
    "StoreError",
    "Subscriber",
    "SubscriberArgs",
    "SubscriberConfig",
    "SyncClient",
    "UnknownServiceError",
    "UnknownWorkflowError",
    "WorkflowContext",
    "WorkflowDefinition",
    "WorkflowResponse",
    "WorkflowResult",
    "Workflows",
    "configure_logging",
    "create_step",
    "create_workflow",
    "parallelize",
    "transform",
    "when",
    "workflow",
]
