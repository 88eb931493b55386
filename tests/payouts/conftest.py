from tests.generation.conftest import (  # noqa: F401  (fixtures shared with the generation tests)
    base_snapshot,
    client,
    customer,
    licensed_catalog,
    served_model,
    tiny_model_folder,
    toy_outputs_count,
)
