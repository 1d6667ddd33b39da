"""The ranges request fields take, shared by the wire models and `jarvis run`'s `/set parameter`
(kept apart from the schemas so the CLI does not import the services they describe)."""

from typing import Annotated

from pydantic import Field

Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
MaxTokens = Annotated[int, Field(ge=1, le=32768)]
TopP = Annotated[float, Field(gt=0.0, le=1.0)]
ModelName = Annotated[str, Field(min_length=1, max_length=200)]
