"""inferq: Python client for the inferq model gateway on Kafka.

    from inferq import Client, Request

    with Client("localhost:9092") as client:
        req = Request.chat("chat-default", [{"role": "user", "content": "Hi"}])
        result = client.submit(req).result(60)
        print(result.status, result.content)

See docs/clients-python.md in the inferq repository.
"""
from .client import Client, ResultFuture
from .codec import (AVRO, JSON, decode_request, decode_result, decode_result_dict, encode_request,
                    encode_result, request_dict_from_avro, result_dict_from_avro)
from .errors import (ClientClosed, DecodeError, DeliveryError, EncodeError, InferqError,
                     RequestTimeout, ResultError)
from .types import (CHAT_URL, COMPLETIONS_URL, EMBEDDINGS_URL, ErrorDetail, Request, Response,
                    Result, Usage, new_custom_id)

__version__ = "0.1.0"

__all__ = [
    "AVRO", "CHAT_URL", "COMPLETIONS_URL", "EMBEDDINGS_URL", "JSON",
    "Client", "ClientClosed", "DecodeError", "DeliveryError", "EncodeError", "ErrorDetail",
    "InferqError", "Request", "RequestTimeout", "Response", "Result", "ResultError",
    "ResultFuture", "Usage",
    "decode_request", "decode_result", "decode_result_dict", "encode_request", "encode_result",
    "new_custom_id", "request_dict_from_avro", "result_dict_from_avro",
]
