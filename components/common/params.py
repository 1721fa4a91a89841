"""Reading execution properties: TFX hands list/dict parameters to executors as JSON."""
import json
from typing import Any, Dict, List


def get_list(exec_properties: Dict[str, Any], key: str) -> List[Any]:
  value = exec_properties.get(key)
  if value in (None, "", "null"):
    return []
  return list(json.loads(value) if isinstance(value, str) else value)
