//! ArmoniK's filter expressions, sorting and paging for the List calls (ArmoniK.Api
//! `filters_common.proto` and the `*_filters.proto` files; the evaluation follows ArmoniK.Core
//! `Common/src/gRPC/*FilterExt.cs`): a filter is an OR of ANDs of conditions on one field
//! each; an empty OR matches everything.

use std::cmp::Ordering;
use std::collections::HashSet;

use armonik::{
    FilterArray, FilterArrayOperator, FilterBoolean, FilterBooleanOperator, FilterDate,
    FilterDateOperator, FilterDuration, FilterDurationOperator, FilterNumber, FilterNumberOperator,
    FilterStatusOperator, FilterString, FilterStringOperator, SortDirection,
};
use prost_types::{Duration, Timestamp};
use tonic::Status;

/// The value of one field of a listed object.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string field.
    Str(String),
    /// An integer field.
    Num(i64),
    /// A boolean field.
    Bool(bool),
    /// A status field, as the number of its proto enum.
    Status(i32),
    /// A date field, unset for an event that has not happened.
    Date(Option<Timestamp>),
    /// A duration field, unset when not known yet.
    Duration(Option<Duration>),
    /// A list of strings (ids).
    Array(Vec<String>),
}

/// A condition on one field, whatever the service it comes from.
#[derive(Debug, Clone)]
pub enum Condition {
    /// On a string.
    String(FilterString),
    /// On an integer.
    Number(FilterNumber),
    /// On a boolean.
    Boolean(FilterBoolean),
    /// On a status: its proto number and the operator.
    Status(i32, FilterStatusOperator),
    /// On a date.
    Date(FilterDate),
    /// On a duration.
    Duration(FilterDuration),
    /// On a list of strings.
    Array(FilterArray),
}

/// An OR of ANDs of `(field, condition)`.
pub type Expression<F> = Vec<Vec<(F, Condition)>>;

/// A filter ready to be evaluated many times. ArmoniK's clients wait for results by naming
/// them, thousands at once, as an OR of `result_id == ...`: such ORs of single string
/// equalities become set lookups, so a filter costs the same whatever its length.
#[derive(Debug)]
pub struct Compiled<F> {
    /// For each field, the values an equality on it accepts.
    sets: Vec<(F, HashSet<String>)>,
    /// The other ANDs of the OR.
    rest: Expression<F>,
}

impl<F: PartialEq> Compiled<F> {
    /// Compiles `filter`, checking that each condition fits its field: `kind` gives a value of
    /// each field's type (from an empty object).
    ///
    /// # Errors
    /// INVALID_ARGUMENT for a condition that does not fit its field (a string condition on a
    /// date, ...), or a field that names nothing, as ArmoniK.Core refuses such filters, even
    /// when no object would be tested.
    pub fn new(
        filter: Expression<F>,
        kind: impl Fn(&F) -> Result<Value, Status>,
    ) -> Result<Self, Status> {
        for (field, condition) in filter.iter().flatten() {
            let value = kind(field)?;
            if !fits(&value, condition) {
                return Err(mismatch(&value, condition));
            }
        }
        let mut sets: Vec<(F, HashSet<String>)> = Vec::new();
        let mut rest = Vec::new();
        for mut and in filter {
            let equality = match and.as_slice() {
                [(_, Condition::String(c))] => c.operator == FilterStringOperator::Equal,
                _ => false,
            };
            if !equality {
                rest.push(and);
                continue;
            }
            let Some((field, Condition::String(c))) = and.pop() else {
                continue;
            };
            match sets.iter_mut().find(|(f, _)| *f == field) {
                Some((_, set)) => {
                    set.insert(c.value);
                }
                None => sets.push((field, HashSet::from([c.value]))),
            }
        }
        Ok(Self { sets, rest })
    }

    /// Whether this is the empty filter, which matches everything without reading a field.
    pub fn matches_all(&self) -> bool {
        self.sets.is_empty() && self.rest.is_empty()
    }

    /// Whether `object` matches; `value` reads one of its fields. An empty filter matches
    /// everything.
    ///
    /// # Errors
    /// INVALID_ARGUMENT when a condition does not apply to its field's type (a string
    /// condition on a date, ...), as ArmoniK.Core refuses such filters.
    pub fn matches<O>(
        &self,
        object: &O,
        value: impl Fn(&O, &F) -> Result<Value, Status>,
    ) -> Result<bool, Status> {
        if self.matches_all() {
            return Ok(true);
        }
        for (field, set) in &self.sets {
            match value(object, field)? {
                Value::Str(v) if set.contains(&v) => return Ok(true),
                Value::Str(_) => {}
                other => {
                    return Err(mismatch(
                        &other,
                        &Condition::String(FilterString::default()),
                    ));
                }
            }
        }
        for and in &self.rest {
            let mut all = true;
            for (field, condition) in and {
                if !holds(&value(object, field)?, condition)? {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

fn holds(value: &Value, condition: &Condition) -> Result<bool, Status> {
    Ok(match (value, condition) {
        (Value::Str(v), Condition::String(c)) => string(v, &c.value, &c.operator),
        (Value::Num(v), Condition::Number(c)) => order(v.cmp(&c.value), &c.operator),
        (Value::Bool(v), Condition::Boolean(c)) => match c.operator {
            FilterBooleanOperator::Is => *v == c.value,
        },
        (Value::Status(v), Condition::Status(s, op)) => match op {
            FilterStatusOperator::Equal => v == s,
            FilterStatusOperator::NotEqual => v != s,
        },
        (Value::Date(v), Condition::Date(c)) => date(v.as_ref(), &c.value, &c.operator),
        (Value::Duration(v), Condition::Duration(c)) => duration(v.as_ref(), &c.value, &c.operator),
        (Value::Array(v), Condition::Array(c)) => match c.operator {
            FilterArrayOperator::Contains => v.contains(&c.value),
            FilterArrayOperator::NotContains => !v.contains(&c.value),
        },
        (value, condition) => return Err(mismatch(value, condition)),
    })
}

/// Whether `condition` can apply to a field holding `value`.
fn fits(value: &Value, condition: &Condition) -> bool {
    matches!(
        (value, condition),
        (Value::Str(_), Condition::String(_))
            | (Value::Num(_), Condition::Number(_))
            | (Value::Bool(_), Condition::Boolean(_))
            | (Value::Status(_), Condition::Status(..))
            | (Value::Date(_), Condition::Date(_))
            | (Value::Duration(_), Condition::Duration(_))
            | (Value::Array(_), Condition::Array(_))
    )
}

/// The error for a condition on a field of another type, in ArmoniK's words.
fn mismatch(value: &Value, condition: &Condition) -> Status {
    let field = match value {
        Value::Str(_) => "string",
        Value::Num(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Status(_) => "status",
        Value::Date(_) => "date",
        Value::Duration(_) => "duration",
        Value::Array(_) => "array",
    };
    let wanted = match condition {
        Condition::String(_) => "string",
        Condition::Number(_) => "number",
        Condition::Boolean(_) => "boolean",
        Condition::Status(..) => "status",
        Condition::Date(_) => "date",
        Condition::Duration(_) => "duration",
        Condition::Array(_) => "array",
    };
    Status::invalid_argument(format!(
        "a {wanted} filter condition does not apply to a {field} field"
    ))
}

fn string(value: &str, operand: &str, operator: &FilterStringOperator) -> bool {
    match operator {
        FilterStringOperator::Equal => value == operand,
        FilterStringOperator::NotEqual => value != operand,
        FilterStringOperator::Contains => value.contains(operand),
        FilterStringOperator::NotContains => !value.contains(operand),
        FilterStringOperator::StartsWith => value.starts_with(operand),
        FilterStringOperator::EndsWith => value.ends_with(operand),
    }
}

fn order(ordering: Ordering, operator: &FilterNumberOperator) -> bool {
    match operator {
        FilterNumberOperator::Equal => ordering.is_eq(),
        FilterNumberOperator::NotEqual => ordering.is_ne(),
        FilterNumberOperator::LessThan => ordering.is_lt(),
        FilterNumberOperator::LessThanOrEqual => ordering.is_le(),
        FilterNumberOperator::GreaterThanOrEqual => ordering.is_ge(),
        FilterNumberOperator::GreaterThan => ordering.is_gt(),
    }
}

/// An unset date matches only "not equal" (ArmoniK stores it as null).
fn date(value: Option<&Timestamp>, operand: &Timestamp, operator: &FilterDateOperator) -> bool {
    let Some(value) = value else {
        return matches!(operator, FilterDateOperator::NotEqual);
    };
    let ordering = (value.seconds, value.nanos).cmp(&(operand.seconds, operand.nanos));
    match operator {
        FilterDateOperator::Equal => ordering.is_eq(),
        FilterDateOperator::NotEqual => ordering.is_ne(),
        FilterDateOperator::Before => ordering.is_lt(),
        FilterDateOperator::BeforeOrEqual => ordering.is_le(),
        FilterDateOperator::AfterOrEqual => ordering.is_ge(),
        FilterDateOperator::After => ordering.is_gt(),
    }
}

fn duration(
    value: Option<&Duration>,
    operand: &Duration,
    operator: &FilterDurationOperator,
) -> bool {
    let Some(value) = value else {
        return matches!(operator, FilterDurationOperator::NotEqual);
    };
    let ordering = (value.seconds, value.nanos).cmp(&(operand.seconds, operand.nanos));
    match operator {
        FilterDurationOperator::Equal => ordering.is_eq(),
        FilterDurationOperator::NotEqual => ordering.is_ne(),
        FilterDurationOperator::ShorterThan => ordering.is_lt(),
        FilterDurationOperator::ShorterThanOrEqual => ordering.is_le(),
        FilterDurationOperator::LongerThanOrEqual => ordering.is_ge(),
        FilterDurationOperator::LongerThan => ordering.is_gt(),
    }
}

/// Orders two values of one field: unset dates and durations first, like nulls in ArmoniK's
/// database.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Str(a), Value::Str(b)) => a.cmp(b),
        (Value::Num(a), Value::Num(b)) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Status(a), Value::Status(b)) => a.cmp(b),
        (Value::Date(a), Value::Date(b)) => a
            .as_ref()
            .map(|t| (t.seconds, t.nanos))
            .cmp(&b.as_ref().map(|t| (t.seconds, t.nanos))),
        (Value::Duration(a), Value::Duration(b)) => a
            .as_ref()
            .map(|t| (t.seconds, t.nanos))
            .cmp(&b.as_ref().map(|t| (t.seconds, t.nanos))),
        (Value::Array(a), Value::Array(b)) => a.cmp(b),
        _ => Ordering::Equal,
    }
}

/// One page of the objects that match a List request, sorted; and how many matched.
///
/// # Errors
/// INVALID_ARGUMENT for a negative page, a page size below 1, or a filter that does not apply.
pub fn page<O, F: PartialEq>(
    objects: Vec<O>,
    filter: Compiled<F>,
    sort: Option<(&F, &SortDirection)>,
    page: i32,
    page_size: i32,
    value: impl Fn(&O, &F) -> Result<Value, Status>,
) -> Result<(Vec<O>, i32), Status> {
    if page < 0 || page_size < 1 {
        return Err(Status::invalid_argument(format!(
            "page must be ≥ 0 and page size ≥ 1, got page {page} and page size {page_size}"
        )));
    }
    let mut kept = Vec::new();
    for object in objects {
        if filter.matches(&object, &value)? {
            kept.push(object);
        }
    }
    if let Some((field, direction)) = sort {
        let mut keyed = kept
            .into_iter()
            .map(|o| Ok((value(&o, field)?, o)))
            .collect::<Result<Vec<_>, Status>>()?;
        keyed.sort_by(|(a, _), (b, _)| compare(a, b));
        if matches!(direction, SortDirection::Desc) {
            keyed.reverse();
        }
        kept = keyed.into_iter().map(|(_, o)| o).collect();
    }
    let total = i32::try_from(kept.len()).unwrap_or(i32::MAX);
    let start = usize::try_from(page)
        .unwrap_or(0)
        .saturating_mul(usize::try_from(page_size).unwrap_or(1));
    let objects = kept
        .into_iter()
        .skip(start)
        .take(usize::try_from(page_size).unwrap_or(1))
        .collect();
    Ok((objects, total))
}

/// Converts a service's filter (`<service>::filter::Or`) into an [`Expression`].
macro_rules! expression {
    ($filter:expr) => {
        $filter
            .or
            .into_iter()
            .map(|and| {
                and.and
                    .into_iter()
                    .map(|f| (f.field, f.condition.into()))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
}
pub(crate) use expression;

/// `From<service condition> for Condition`, for the variants the service has.
macro_rules! impl_condition {
    ($source:ty, [$($variant:ident),*] $(, $status:ident)?) => {
        impl From<$source> for Condition {
            fn from(condition: $source) -> Self {
                type S = $source;
                match condition {
                    $(S::$status(c) => Condition::Status(c.value as i32, c.operator),)?
                    $(S::$variant(c) => Condition::$variant(c),)*
                }
            }
        }
    };
}

impl_condition!(
    armonik::tasks::filter::Condition,
    [String, Number, Boolean, Date, Duration, Array],
    Status
);
impl_condition!(
    armonik::sessions::filter::Condition,
    [String, Number, Boolean, Date, Duration, Array],
    Status
);
impl_condition!(
    armonik::results::filter::Condition,
    [String, Number, Date, Array],
    Status
);
impl_condition!(
    armonik::partitions::filter::Condition,
    [String, Number, Boolean, Array]
);
impl_condition!(armonik::applications::filter::Condition, [String]);
