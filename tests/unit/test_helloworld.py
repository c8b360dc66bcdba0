"""The hand-encoded helloworld messages equal the protobuf runtime's serialisation."""
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from replayer.transports.helloworld import decode_string_field1, hello_request


def _request_class():
    fdp = descriptor_pb2.FileDescriptorProto(name="hw_test.proto", package="helloworld_test",
                                             syntax="proto3")
    msg = fdp.message_type.add(name="HelloRequest")
    msg.field.add(name="name", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    msg.field.add(name="vHiveMetadata", number=15, type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("helloworld_test.HelloRequest"))


def test_encoding_matches_protobuf():
    """hello_request equals protobuf's serialisation for empty, non-ASCII and long names, and
    decode_string_field1 reads the name back past other fields."""
    cls = _request_class()
    for name in ["Invoke relay", "", "é" * 200, "x" * 100000]:
        assert hello_request(name) == cls(name=name).SerializeToString()
        assert decode_string_field1(cls(name=name, vHiveMetadata=b"\x01\x02").SerializeToString()) == name
