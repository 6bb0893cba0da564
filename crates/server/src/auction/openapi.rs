//! The auction service's OpenAPI document: what it says besides the handlers' own annotations (the
//! title, the operator's security scheme, the error answers every handler shares), and the route
//! that serves it at `/api/v1/openapi.json`.
//!
//! The paths come from the `#[utoipa::path]` of each handler through the router itself, and the
//! schemas from the `auction-proto` types the handlers take and return, so the document describes
//! exactly what is served.

use std::sync::Arc;

use auction_proto::rest::ErrorBody;
use auction_proto::rules::IncrementBand;
use axum::Extension;
use axum::Json;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::{Modify, ToResponse};

/// The name of the operator token's security scheme, as the handlers' `security(...)` cite it.
const OPERATOR_TOKEN: &str = "operator_token";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Auction service",
        description = "Creates, lists, extends and cancels live English auctions, and keeps the bid \
            increment table. Bids themselves go over the bidding service's WebSocket. Errors are \
            `{\"error\":{\"code\",\"message\",\"field\"}}`. Times are RFC 3339 UTC; money is a decimal \
            string with two places.",
    ),
    modifiers(&OperatorToken),
    components(
        // `BidRules` refers to its bands by name without registering them (its list schema is
        // written by hand to take its limits from `MAX_BANDS`).
        schemas(ErrorBody, IncrementBand),
        responses(BadRequest, Unauthorized, NotFound, Conflict, TooLarge, Unavailable)
    )
)]
pub struct ApiDoc;

/// Adds the operator token's scheme, which the state-changing operations require.
struct OperatorToken;

impl Modify for OperatorToken {
    fn modify(&self, openapi: &mut OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The service's ADMIN_TOKEN. Required when the service runs with one (production); a \
                 service without one (development) lets anyone make changes.",
            ))
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(OPERATOR_TOKEN, SecurityScheme::Http(scheme));
    }
}

// The error answers the handlers share, as response components. The types exist only for the
// document: nothing builds them, hence `dead_code`.

#[derive(ToResponse)]
#[response(description = "The request is malformed or a value is out of range; `field` names it")]
#[allow(dead_code)]
pub struct BadRequest(ErrorBody);

#[derive(ToResponse)]
#[response(description = "The operator token is missing or wrong; nothing was changed")]
#[allow(dead_code)]
pub struct Unauthorized(ErrorBody);

#[derive(ToResponse)]
#[response(description = "No such auction")]
#[allow(dead_code)]
pub struct NotFound(ErrorBody);

#[derive(ToResponse)]
#[response(description = "The auction is ended or cancelled, so it cannot be changed")]
#[allow(dead_code)]
pub struct Conflict(ErrorBody);

#[derive(ToResponse)]
#[response(description = "The body is over 64 KiB")]
#[allow(dead_code)]
pub struct TooLarge(ErrorBody);

#[derive(ToResponse)]
#[response(description = "Redis or MySQL does not answer; try again")]
#[allow(dead_code)]
pub struct Unavailable(ErrorBody);

/// The schema of a `limit` parameter: 1 to `max`.
pub fn limit_schema(max: usize) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(max)).into()
}

/// The document, handed to its route as an extension since it exists only once the router does.
pub type Document = Extension<Arc<OpenApi>>;

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "get_openapi",
    responses((status = 200, description = "This OpenAPI document", body = Object, content_type = "application/json"))
)]
pub async fn document(Extension(document): Document) -> Response {
    Json(document.as_ref()).into_response()
}
