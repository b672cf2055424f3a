from dockyard.auth.throttle import MAX_PER_CLIENT, MAX_PER_USER_AND_CLIENT, FailedLogins


def test_throttle_trips_after_repeated_failures_for_one_user():
    failures = FailedLogins()
    for _ in range(MAX_PER_USER_AND_CLIENT):
        failures.record("carol", "10.0.0.1")

    assert failures.throttled("carol", "10.0.0.1")
    assert not failures.throttled("carol", "10.0.0.2")


def test_throttle_trips_for_a_client_spraying_usernames():
    failures = FailedLogins()
    for index in range(MAX_PER_CLIENT):
        failures.record(f"user{index}", "10.0.0.1")

    assert failures.throttled("anyone", "10.0.0.1")


def test_flooding_with_unknown_usernames_does_not_forget_a_victims_failures():
    failures = FailedLogins()
    for _ in range(MAX_PER_USER_AND_CLIENT):
        failures.record("carol", "10.0.0.1")

    for index in range(20_000):  # as the login path does: check, then record
        if not failures.throttled(f"junk{index}", "10.0.0.9"):
            failures.record(f"junk{index}", "10.0.0.9")

    assert failures.throttled("carol", "10.0.0.1")
