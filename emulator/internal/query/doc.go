// SPDX-License-Identifier: MIT

// Package query implements the IoT Hub query language for twins: a
// hand-written lexer and recursive-descent parser, and an evaluator that
// runs over stored twin JSON without decoding it.
//
// Sources: learn.microsoft.com/azure/iot-hub/iot-hub-devguide-query-language
// and .../query-twins (MicrosoftDocs/azure-docs), §6.6, §8 and §11 of
// docs/iothub-protocol.md, and queries found in the official SDKs' samples
// and tests.
//
// # Grammar
//
//	SELECT [TOP n] projection FROM collection [WHERE cond] [GROUP BY path {, path}]
//	projection := '*' | item [AS alias] {, item [AS alias]}
//	item       := path | COUNT() | SUM(path) | AVG(path) | MIN(path) | MAX(path)
//	collection := devices | devices.modules | devices.jobs
//	path       := name {'.' name | '[' index ']'}
//
// Keywords, function names and collection names are case-insensitive. Names
// are letters, digits, '_' and '$' (so $metadata paths such as
// properties.reported.$metadata.fw.$lastUpdated work); after a '.' a name may
// start with a digit. The docs define no quoted or bracketed member names,
// so keys holding other characters (a '-', say) cannot be addressed. Array
// indexes come from the route-query syntax ($body.a[0]).
//
// Conditions have literals (decimal and 0x hexadecimal numbers; strings in
// single or double quotes with the escapes \', \", \\ and \uXXXX; true,
// false, null, undefined; arrays [..]), arithmetic + - * / %, comparisons
// = != <> < > <= >=, AND, OR, NOT, IN and NIN, parentheses, and the
// functions IS_DEFINED, IS_NULL, IS_BOOL, IS_NUMBER, IS_STRING, IS_OBJECT,
// IS_ARRAY, IS_PRIMITIVE, AS_NUMBER, ABS, CEILING, FLOOR, ROUND, TRUNC,
// SIGN, SQUARE, SQRT, EXP, POWER, LENGTH, LOWER, UPPER, CONCAT, SUBSTRING,
// INDEX_OF, STARTS_WITH (or STARTSWITH), ENDS_WITH (or ENDSWITH) and
// CONTAINS. The docs list only IS_DEFINED for twin queries and the rest for
// route conditions, which share the grammar; real twin queries use
// STARTSWITH (e.g. the C# SDK's registry sample), so all are accepted.
//
// # Names
//
// A leading collection name is dropped (devices.deviceId, as in the docs'
// devices.jobs.jobId). The twin's own fields (deviceId, status, tags,
// properties, ...), the desired/reported sections, the members of
// capabilities and x509Thumbprint, and the hub's $metadata, $version,
// $lastUpdated and $lastUpdatedVersion resolve case-insensitively to their
// canonical spelling: the docs select DeviceId and get deviceId back. Names
// chosen by users, below tags and below desired/reported, are matched
// case-sensitively, as the JSON document is (the real hub's rule is
// unconfirmed, §11 item 11).
//
// # Evaluation
//
// Expressions evaluate to a JSON value or to undefined (a missing property).
// Only boolean true satisfies a condition; null, undefined, strings, numbers,
// objects and false do not (docs, "Expressions and conditions"). Rules
// chosen where the docs are silent, following the Cosmos DB dialect the
// language comes from:
//
//   - comparisons are defined only between two primitives of the same type
//     (docs: comparisons are supported only between primitive types); other
//     operands, and undefined, give undefined, so `x != 'a'` does not match
//     a twin without x. null = null is true. Strings compare by bytes;
//   - AND, OR and NOT are three-valued; non-boolean operands are undefined;
//   - arithmetic and math functions take numbers; division or modulo by
//     zero and non-finite results are undefined;
//   - IN and NIN compare a primitive with each element of an array;
//   - string functions take strings and count characters, not bytes;
//     results longer than 64 KiB are undefined;
//   - IS_* functions return false, never undefined, for undefined input.
//
// # Results
//
// SELECT * returns the documents unchanged (item type Twin). Projections
// return one object per document (item type Raw): the key of an un-aliased
// path is its last name, of an un-aliased aggregate $1, $2, ...; undefined
// values are left out; keys keep projection order. Aggregates without GROUP
// BY give one object; with GROUP BY one object per group, in order of first
// appearance. COUNT() counts documents, SUM/AVG add numbers and skip other
// values, MIN/MAX order bool < number < string. Every projected path must be
// grouped when aggregates or GROUP BY are used. (The docs' GROUP BY example
// prints the count before the grouped value; JSON key order carries no
// meaning, and projection order is the predictable choice.) GROUP BY works
// on devices and devices.modules; devices.jobs allows only SELECT * (item
// type DeviceJob), as the docs state.
//
// # Limits
//
// Query text is limited to 8192 characters, nesting to 64 levels; the parser
// never panics and reports an *Error with a byte offset. Evaluation work is
// linear in the query size times the document size.
//
// Quick start:
//
//	q, err := query.Parse("SELECT * FROM devices WHERE tags.site = 'B7'")
//	items, err := q.Execute(slices.Values(twinJSONs))
package query
