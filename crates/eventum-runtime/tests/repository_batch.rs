//! `Repository::execute_batch` against the real `LogStore`: one append for many commands,
//! each decided on the state the previous ones left, refusals reported per command, and
//! command ids still idempotency keys afterwards.

mod common;

use common::*;
use eventum_core::{ReadDirection, StreamName};
use eventum_runtime::{CommandContext, CommandMeta, DispatchError, Repository, RepositoryConfig};
use uuid::Uuid;

fn ctx(id: Uuid) -> CommandContext {
    CommandContext {
        command_type: "Withdraw",
        meta: CommandMeta::with_id(id),
    }
}

fn withdraw(amount: u64) -> AccountCommand {
    AccountCommand::Withdraw {
        id: "a".into(),
        amount,
    }
}

#[tokio::test]
async fn a_batch_appends_once_refuses_per_command_and_stays_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let repo = Repository::<Account>::new(store.clone(), RepositoryConfig::default());
    repo.execute(&open("a"), &ctx(Uuid::now_v7()))
        .await
        .unwrap();
    repo.execute(&deposit("a", 10), &ctx(Uuid::now_v7()))
        .await
        .unwrap();
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    // 4 + 4 fit in 10; the third (4) does not once the first two are taken; 2 does.
    let batch: Vec<_> = [4, 4, 4, 2]
        .iter()
        .zip(&ids)
        .map(|(amount, id)| (withdraw(*amount), ctx(*id)))
        .collect();
    let outcomes = repo.execute_batch(&batch).await.unwrap();
    assert_eq!(outcomes.len(), 4);
    let versions: Vec<Option<u64>> = outcomes
        .iter()
        .map(|o| o.as_ref().ok().and_then(|a| a.version))
        .collect();
    assert_eq!(versions, [Some(2), Some(3), None, Some(4)]);
    assert!(
        matches!(&outcomes[2], Err(DispatchError::Rejected { code, .. }) if code == "insufficient_funds")
    );
    let positions: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().and_then(|a| a.position))
        .collect();
    assert_eq!(positions[1], positions[0] + 1);
    assert_eq!(positions[2], positions[1] + 1);

    let stream = StreamName::new("account-a").unwrap();
    let events = store
        .read_stream(&stream, None, ReadDirection::Forward, 100)
        .await
        .unwrap();
    assert_eq!(events.len(), 5, "opened, deposited, three withdrawals");
    assert_eq!(
        events[2].position + 2,
        events[4].position,
        "one atomic append"
    );
    assert_eq!(repo.load("a").await.unwrap().state.balance, 0);

    // Sent again, accepted commands are recognised; the refused one is decided again.
    let again = repo.execute_batch(&batch).await.unwrap();
    assert!(again[0].as_ref().unwrap().duplicate && again[3].as_ref().unwrap().duplicate);
    assert!(again[2].is_err());
    let fresh = Repository::<Account>::new(store.clone(), RepositoryConfig::default());
    let again = fresh.execute_batch(&batch[..1]).await.unwrap();
    assert!(
        again[0].as_ref().unwrap().duplicate,
        "recognised from the log"
    );

    let mixed = vec![
        (withdraw(1), ctx(Uuid::now_v7())),
        (deposit("b", 1), ctx(Uuid::now_v7())),
    ];
    assert!(matches!(
        repo.execute_batch(&mixed).await,
        Err(DispatchError::Invalid(_))
    ));
}
