from brain_cnn.scan.limits import within_session_limits


def test_the_first_uploads_within_the_limits_are_read_and_the_rest_are_named():
    assert within_session_limits([10, 10, 10], max_files=5, max_bytes=100) == (3, None)
    kept, message = within_session_limits([10, 10, 10], max_files=2, max_bytes=100)
    assert kept == 2 and message.startswith("1 of the 3 uploads were not read") and "2 files" in message
    kept, message = within_session_limits([40 * 2**20, 40 * 2**20, 1], max_files=10, max_bytes=64 * 2**20)
    assert kept == 1 and "64 MB" in message
    assert within_session_limits([]) == (0, None)
