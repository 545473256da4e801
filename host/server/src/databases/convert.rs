//! WIT `value`s to statement parameters and result fields back to
//! `value`s. A parameter must fit the type PostgreSQL inferred for it
//! exactly (no silent truncation of an integer, no text where a number is
//! expected); a column type the host cannot show faithfully is an error
//! naming the column, found when the statement is prepared.

use portcullis_runtime::capabilities::sql::{Column, SqlError, Value};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

/// One converted parameter.
pub type Param = Box<dyn ToSql + Sync + Send>;

/// SQL NULL for a parameter of any type.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    ) || ty.name() == "citext"
}

/// `params` as the statement's parameter `types`, or why not (the index
/// and both types; never the value, which may be a password).
pub fn params(types: &[Type], params: Vec<Value>) -> Result<Vec<Param>, SqlError> {
    if types.len() != params.len() {
        return Err(SqlError::BadParameters(format!(
            "the statement takes {} parameters, {} given",
            types.len(),
            params.len()
        )));
    }
    types
        .iter()
        .zip(params)
        .enumerate()
        .map(|(i, (ty, value))| {
            param(ty, value).map_err(|given| {
                SqlError::BadParameters(format!("${}: {given} does not fit type {ty}", i + 1))
            })
        })
        .collect()
}

/// One parameter, or the kind of value that did not fit.
fn param(ty: &Type, value: Value) -> Result<Param, &'static str> {
    Ok(match value {
        Value::Null => Box::new(Null),
        Value::Boolean(b) if *ty == Type::BOOL => Box::new(b),
        Value::Int(i) => match *ty {
            Type::INT2 => Box::new(i16::try_from(i).map_err(|_| "an int out of range")?),
            Type::INT4 => Box::new(i32::try_from(i).map_err(|_| "an int out of range")?),
            Type::INT8 => Box::new(i),
            Type::OID => Box::new(u32::try_from(i).map_err(|_| "an int out of range")?),
            _ => return Err("an int"),
        },
        Value::Float(f) => match *ty {
            Type::FLOAT8 => Box::new(f),
            Type::FLOAT4 => Box::new(f as f32),
            _ => return Err("a float"),
        },
        Value::Text(s) if is_text(ty) => Box::new(s),
        Value::Bytes(b) if *ty == Type::BYTEA => Box::new(b),
        Value::Boolean(_) => return Err("a boolean"),
        Value::Text(_) => return Err("a text"),
        Value::Bytes(_) => return Err("bytes"),
    })
}

/// A field's bytes as PostgreSQL sent them (binary format), for the types
/// whose binary form is their text.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Whether a column of type `ty` can be handed to a plugin.
pub fn supported(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::BOOL
            | Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::OID
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::BYTEA
            | Type::JSON
            | Type::JSONB
            | Type::UUID
    ) || is_text(ty)
        || matches!(ty.kind(), Kind::Enum(_))
}

/// The first column of `columns` no plugin could be given, as the error
/// naming it.
pub fn check_columns(columns: &[tokio_postgres::Column]) -> Result<(), String> {
    match columns.iter().find(|c| !supported(c.type_())) {
        Some(c) => Err(format!(
            "column {:?} has type {}, which the host does not convert: cast it in the query \
             (e.g. {}::text)",
            c.name(),
            c.type_(),
            c.name()
        )),
        None => Ok(()),
    }
}

/// One row as WIT columns, each field at most `max_field` bytes.
pub fn row(row: &Row, max_field: usize) -> Result<Vec<Column>, SqlError> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            // Checked on the bytes as received, before any copy is made.
            let size = row
                .try_get::<_, Option<Raw>>(i)
                .ok()
                .flatten()
                .map_or(0, |Raw(b)| b.len());
            if size > max_field {
                return Err(SqlError::TooLarge(format!(
                    "column {:?} is over {max_field} bytes",
                    column.name()
                )));
            }
            let value = field(row, i, column.type_()).map_err(|FieldError(message)| {
                SqlError::Failed(format!("column {:?}: {message}", column.name()))
            })?;
            Ok(Column {
                name: column.name().to_owned(),
                value,
            })
        })
        .collect()
}

/// Why a field could not be converted.
struct FieldError(String);

fn field(row: &Row, i: usize, ty: &Type) -> Result<Value, FieldError> {
    fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<Option<T>, FieldError> {
        row.try_get::<_, Option<T>>(i)
            .map_err(|e| FieldError(e.to_string()))
    }
    let value = match *ty {
        Type::BOOL => get::<bool>(row, i)?.map(Value::Boolean),
        Type::INT2 => get::<i16>(row, i)?.map(|v| Value::Int(v.into())),
        Type::INT4 => get::<i32>(row, i)?.map(|v| Value::Int(v.into())),
        Type::INT8 => get::<i64>(row, i)?.map(Value::Int),
        Type::OID => get::<u32>(row, i)?.map(|v| Value::Int(v.into())),
        Type::FLOAT4 => get::<f32>(row, i)?.map(|v| Value::Float(v.into())),
        Type::FLOAT8 => get::<f64>(row, i)?.map(Value::Float),
        Type::BYTEA => get::<Vec<u8>>(row, i)?.map(Value::Bytes),
        Type::UUID => get::<Raw>(row, i)?
            .map(|Raw(b)| uuid_text(b).map(Value::Text))
            .transpose()?,
        // jsonb's binary form is a version byte (1) then the text.
        Type::JSONB => get::<Raw>(row, i)?
            .map(|Raw(b)| match b.split_first() {
                Some((1, text)) => utf8(text),
                _ => Err(FieldError("unknown jsonb version".into())),
            })
            .transpose()?,
        _ => get::<Raw>(row, i)?.map(|Raw(b)| utf8(b)).transpose()?,
    };
    Ok(value.unwrap_or(Value::Null))
}

fn utf8(bytes: &[u8]) -> Result<Value, FieldError> {
    std::str::from_utf8(bytes)
        .map(|s| Value::Text(s.to_owned()))
        .map_err(|_| FieldError("not UTF-8".into()))
}

fn uuid_text(b: &[u8]) -> Result<String, FieldError> {
    if b.len() != 16 {
        return Err(FieldError("a uuid is 16 bytes".into()));
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_must_fit_their_type_and_count() {
        assert!(params(&[Type::TEXT], vec![Value::Text("alice".into())]).is_ok());
        assert!(params(&[Type::INT4], vec![Value::Null]).is_ok());
        let e = params(&[Type::INT2], vec![Value::Int(70_000)])
            .err()
            .unwrap();
        assert!(
            matches!(&e, SqlError::BadParameters(m) if m.contains("$1") && m.contains("out of range")),
            "{e:?}"
        );
        let e = params(&[Type::INT4], vec![Value::Text("hunter2".into())])
            .err()
            .unwrap();
        assert!(
            matches!(&e, SqlError::BadParameters(m) if !m.contains("hunter2") && m.contains("int4")),
            "{e:?}"
        );
        let e = params(&[Type::TEXT], vec![]).err().unwrap();
        assert!(
            matches!(&e, SqlError::BadParameters(m) if m.contains("takes 1")),
            "{e:?}"
        );
    }

    #[test]
    fn unconvertible_columns_are_named() {
        assert!(supported(&Type::JSONB) && supported(&Type::VARCHAR));
        assert!(!supported(&Type::TIMESTAMPTZ) && !supported(&Type::NUMERIC));
        assert_eq!(
            uuid_text(&[0x12; 16]).ok().unwrap(),
            "12121212-1212-1212-1212-121212121212"
        );
    }
}
