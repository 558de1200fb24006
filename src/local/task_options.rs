//! How ArmoniK combines task options: a subtask's own, then its request's, then its session's.

use crate::proto::v1::TaskOptions;

/// ArmoniK's option merge (ArmoniK.Core `TaskOptions.Merge`): a field set in `task` wins over
/// `defaults`, where a number counts as set when it is non-zero (negative included) and a
/// string when it is not empty; the option maps are merged key by key; `priority` is not
/// merged (unset means 0).
pub fn merge_options(task: Option<&TaskOptions>, defaults: &TaskOptions) -> TaskOptions {
    let Some(task) = task else {
        return defaults.clone();
    };
    let pick = |own: &String, default: &String| {
        if own.is_empty() {
            default.clone()
        } else {
            own.clone()
        }
    };
    let mut options = defaults.options.clone();
    options.extend(task.options.iter().map(|(k, v)| (k.clone(), v.clone())));
    TaskOptions {
        options,
        max_duration: task
            .max_duration
            .filter(|d| d.seconds != 0 || d.nanos != 0)
            .or(defaults.max_duration),
        max_retries: if task.max_retries != 0 {
            task.max_retries
        } else {
            defaults.max_retries
        },
        priority: task.priority,
        partition_id: pick(&task.partition_id, &defaults.partition_id),
        application_name: pick(&task.application_name, &defaults.application_name),
        application_version: pick(&task.application_version, &defaults.application_version),
        application_namespace: pick(&task.application_namespace, &defaults.application_namespace),
        application_service: pick(&task.application_service, &defaults.application_service),
        engine_type: pick(&task.engine_type, &defaults.engine_type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_options_win_over_request_over_session() {
        let session = TaskOptions {
            options: [
                ("a".into(), "session".into()),
                ("b".into(), "session".into()),
            ]
            .into(),
            max_duration: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            max_retries: 3,
            priority: 5,
            partition_id: "default".into(),
            application_name: "app".into(),
            ..TaskOptions::default()
        };
        let request = TaskOptions {
            options: [("b".into(), "request".into())].into(),
            max_retries: 1,
            partition_id: "gpu".into(),
            ..TaskOptions::default()
        };
        let task = TaskOptions {
            options: [("c".into(), "task".into())].into(),
            max_duration: Some(prost_types::Duration {
                seconds: 5,
                nanos: 0,
            }),
            priority: 2,
            ..TaskOptions::default()
        };
        let merged = merge_options(Some(&task), &merge_options(Some(&request), &session));
        assert_eq!(merged.options["a"], "session");
        assert_eq!(merged.options["b"], "request");
        assert_eq!(merged.options["c"], "task");
        assert_eq!(merged.max_duration.map(|d| d.seconds), Some(5));
        assert_eq!(merged.max_retries, 1);
        assert_eq!(merged.partition_id, "gpu");
        assert_eq!(merged.application_name, "app");
        // Priority is not merged, as in ArmoniK.
        assert_eq!(merged.priority, 2);
        assert_eq!(merge_options(Some(&request), &session).priority, 0);
        assert_eq!(merge_options(None, &session), session);
        // Zero is unset; any other number, negative included, is set.
        let negative = TaskOptions {
            max_retries: -1,
            max_duration: Some(prost_types::Duration {
                seconds: -5,
                nanos: 0,
            }),
            ..TaskOptions::default()
        };
        let merged = merge_options(Some(&negative), &session);
        assert_eq!(merged.max_retries, -1);
        assert_eq!(merged.max_duration.map(|d| d.seconds), Some(-5));
        let zero = TaskOptions {
            max_duration: Some(prost_types::Duration::default()),
            ..TaskOptions::default()
        };
        let merged = merge_options(Some(&zero), &session);
        assert_eq!(merged.max_retries, 3);
        assert_eq!(merged.max_duration.map(|d| d.seconds), Some(60));
    }
}
