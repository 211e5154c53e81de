//! Bad input gets a typed error with the right code and writes nothing to the store.

mod common;

use common::*;
use eventum_core::{ErrorCode, EventStore};
use eventum_groups::{
    AckError, CreateError, DeleteError, GroupSettings, GroupTarget, GroupsConfig, InfoError,
    NackAction, NackError, ParkedError, ReceiveError, ReplayError,
};

#[tokio::test]
async fn unknown_group_is_not_found_everywhere() {
    let env = env().await;
    let svc = &env.svc;
    let e = svc.info("nope").unwrap_err();
    assert!(matches!(e, InfoError::NotFound(_)));
    assert_eq!(e.code(), ErrorCode::NotFound);
    let e = svc.receive("nope", "c", 1, 0).await.unwrap_err();
    assert!(matches!(e, ReceiveError::NotFound(_)));
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(matches!(
        svc.ack("nope", &[1]).await,
        Err(AckError::NotFound(_))
    ));
    assert!(matches!(
        svc.nack("nope", 1, NackAction::Retry, "").await,
        Err(NackError::NotFound(_))
    ));
    assert!(matches!(
        svc.parked("nope", 0, 10),
        Err(ParkedError::NotFound(_))
    ));
    assert!(matches!(
        svc.replay("nope", None),
        Err(ReplayError::NotFound(_))
    ));
    let e = svc.delete("nope").await.unwrap_err();
    assert!(matches!(e, DeleteError::NotFound(_)));
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert_eq!(env.store.head_position(), None, "nothing written");
}

#[tokio::test]
async fn bad_names_settings_and_duplicates_write_nothing() {
    let env = env_with(GroupsConfig {
        groups_max: 1,
        ..fast_config()
    })
    .await;
    let svc = &env.svc;
    let ok = settings(GroupTarget::All, true);
    let bad: Vec<(&str, GroupSettings)> = vec![
        ("a/b", ok.clone()),
        ("", ok.clone()),
        (
            "g",
            GroupSettings {
                max_attempts: 0,
                ..ok.clone()
            },
        ),
        (
            "g",
            GroupSettings {
                retry_delay_ms_base: 500,
                retry_delay_ms_max: 100,
                ..ok.clone()
            },
        ),
        (
            "g",
            GroupSettings {
                ack_timeout_ms: 0,
                ..ok.clone()
            },
        ),
        (
            "g",
            GroupSettings {
                in_flight_max: 0,
                ..ok.clone()
            },
        ),
        (
            "g",
            GroupSettings {
                buffer_events_max: 10_000_000,
                ..ok.clone()
            },
        ),
        ("g", settings(GroupTarget::Category("a-b".into()), true)),
        ("g", settings(GroupTarget::Category("$dlq".into()), true)),
        ("g", settings(GroupTarget::Stream("$groups".into()), true)),
        ("g", settings(GroupTarget::Stream(String::new()), true)),
    ];
    for (name, s) in bad {
        let e = svc.create(name, s.clone()).await.unwrap_err();
        assert!(
            matches!(
                e,
                CreateError::InvalidName(_) | CreateError::InvalidSettings(_)
            ),
            "{name:?} {s:?}: {e}"
        );
        assert_eq!(e.code(), ErrorCode::InvalidInput);
    }
    assert_eq!(
        env.store.head_position(),
        None,
        "refused creates write nothing"
    );
    assert!(svc.list().is_empty());

    svc.create("g", ok.clone()).await.unwrap();
    let head = env.store.head_position();
    let e = svc.create("g", ok.clone()).await.unwrap_err();
    assert!(matches!(e, CreateError::AlreadyExists(ref n) if n == "g"));
    assert_eq!(e.code(), ErrorCode::AlreadyExists);
    let e = svc.create("h", ok).await.unwrap_err();
    assert!(matches!(e, CreateError::TooManyGroups { max: 1 }));
    assert_eq!(
        env.store.head_position(),
        head,
        "refused creates write nothing"
    );
}

#[tokio::test]
async fn receive_ack_nack_and_listing_bounds() {
    let env = env_with(GroupsConfig {
        consumers_per_group_max: 1,
        receive_events_max: 10,
        ack_tokens_max: 3,
        reason_bytes_max: 8,
        parked_list_max: 5,
        ..fast_config()
    })
    .await;
    let svc = &env.svc;
    svc.create("g", settings(GroupTarget::All, true))
        .await
        .unwrap();
    for (consumer, max, wait) in [("c", 0, 0), ("c", 11, 0), ("", 1, 0), ("c", 1, 3_600_000)] {
        let e = svc.receive("g", consumer, max, wait).await.unwrap_err();
        assert!(matches!(e, ReceiveError::InvalidInput(_)), "{e}");
        assert_eq!(e.code(), ErrorCode::InvalidInput);
    }
    svc.receive("g", "c1", 1, 0).await.unwrap();
    let e = svc.receive("g", "c2", 1, 0).await.unwrap_err();
    assert!(matches!(e, ReceiveError::TooManyConsumers { max: 1, .. }));
    assert_eq!(e.code(), ErrorCode::Unavailable);
    let e = svc.ack("g", &[1, 2, 3, 4]).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    let r = svc.ack("g", &[42]).await.unwrap();
    assert_eq!((r.acked, r.unknown), (0, vec![42]));
    let e = svc
        .nack("g", 42, NackAction::Park, "far too long a reason")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert!(matches!(
        svc.nack("g", 42, NackAction::Park, "short").await,
        Err(NackError::UnknownToken(42))
    ));
    assert!(matches!(
        svc.parked("g", 0, 0),
        Err(ParkedError::InvalidInput(_))
    ));
    assert!(matches!(
        svc.parked("g", 0, 6),
        Err(ParkedError::InvalidInput(_))
    ));
    assert!(read_stream(&env.store, "$dlq-g").await.is_empty());
}
