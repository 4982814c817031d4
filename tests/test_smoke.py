from models import create_model, get_entry


def test_efficientmod_builds():
    assert get_entry("efficientmod_xxs").available
    assert create_model("efficientmod_xxs") is not None
