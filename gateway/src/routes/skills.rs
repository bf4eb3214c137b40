//! Skills (reference: Skills): builtin and community skills; create, edit,
//! delete community skills, import one from a URL.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use arvis_shared::bus::events::ConfigChanged;
use arvis_shared::db::DbError;
use arvis_shared::db::skills::SkillDelete;
use arvis_shared::domain::skill::{MAX_CONTENT_BYTES, NewSkill, Skill, SkillImport, SkillPatch, skill_from_markdown};
use arvis_shared::domain::{Invalid, check_text};
use arvis_shared::net::{self, FetchLimits};

use super::Ok;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

/// How long an import may take.
pub const IMPORT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_skills, create_skill))
        .routes(routes!(update_skill, delete_skill))
        .routes(routes!(import_skill))
}

async fn changed(state: &AppState, id: i64) {
    state.deps.bus.signal(&ConfigChanged { v: 1, entity: "skill".into(), id: Some(id) }).await;
}

fn duplicate_name(e: DbError) -> ApiError {
    match e {
        DbError::Conflict(_) => ApiError::conflict("a skill with this name already exists"),
        other => other.into(),
    }
}

/// List all skills (builtin and community).
#[utoipa::path(get, path = "/api/skills", tag = "skills", responses((status = 200, body = Vec<Skill>), (status = 401, body = ErrorBody)))]
async fn list_skills(State(state): State<AppState>) -> ApiResult<Json<Vec<Skill>>> {
    Ok(Json(state.deps.store.list_skills().await?))
}

/// Create a community skill. `name` is a unique slug; `triggerPatterns` must be
/// valid regular expressions.
#[utoipa::path(post, path = "/api/skills", tag = "skills", request_body = NewSkill,
    responses((status = 201, body = Skill), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn create_skill(
    State(state): State<AppState>,
    AppJson(body): AppJson<NewSkill>,
) -> ApiResult<(StatusCode, Json<Skill>)> {
    Ok((StatusCode::CREATED, Json(create(&state, body).await?)))
}

/// Creates a community skill: the REST handler's and the dashboard's one path.
pub async fn create(state: &AppState, body: NewSkill) -> ApiResult<Skill> {
    let fields = body.into_fields()?;
    let skill = state.deps.store.create_skill(&fields).await.map_err(duplicate_name)?;
    changed(state, skill.id).await;
    Ok(skill)
}

/// Update a skill. Editable: isEnabled, displayName, description,
/// triggerKeywords, triggerPatterns, content.
#[utoipa::path(patch, path = "/api/skills/{id}", tag = "skills", params(("id" = i64, Path)), request_body = SkillPatch,
    responses((status = 200, body = Skill), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn update_skill(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppJson(patch): AppJson<SkillPatch>,
) -> ApiResult<Json<Skill>> {
    Ok(Json(update(&state, id, patch).await?))
}

/// Applies a patch to a skill (REST and dashboard).
pub async fn update(state: &AppState, id: i64, patch: SkillPatch) -> ApiResult<Skill> {
    let store = &state.deps.store;
    let current = store.get_skill(id).await?.ok_or_else(|| ApiError::not_found("skill not found"))?;
    let fields = patch.apply(&current)?;
    let skill = store.update_skill(id, &fields).await?.ok_or_else(|| ApiError::not_found("skill not found"))?;
    changed(state, id).await;
    Ok(skill)
}

/// Delete a community skill. Builtin skills cannot be deleted (400; disable them instead).
#[utoipa::path(delete, path = "/api/skills/{id}", tag = "skills", params(("id" = i64, Path)),
    responses((status = 200, body = Ok), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_skill(State(state): State<AppState>, AppPath(id): AppPath<i64>) -> ApiResult<Json<Ok>> {
    delete(&state, id).await?;
    Ok(Ok::json())
}

/// Deletes a community skill; a builtin one is refused (REST and dashboard).
pub async fn delete(state: &AppState, id: i64) -> ApiResult<()> {
    match state.deps.store.delete_skill(id).await? {
        SkillDelete::Deleted => {
            changed(state, id).await;
            Ok(())
        }
        SkillDelete::Builtin => Err(ApiError::bad_request("builtin skills cannot be deleted; disable them instead")),
        SkillDelete::NotFound => Err(ApiError::not_found("skill not found")),
    }
}

/// Import a community skill from an http(s) URL serving markdown with front
/// matter (`name` required; `description`, `keywords`, `patterns` optional).
/// At most 256 KiB, 10 s, at most 5 redirects; a markdown or plain-text
/// answer. Loopback, private and link-local addresses are refused (after DNS
/// resolution, on every redirect) unless `HTTP_FETCH_ALLOW_PRIVATE=true` — the
/// same guard as the agents' `http_fetch` tool.
#[utoipa::path(post, path = "/api/skills/import", tag = "skills", request_body = SkillImport,
    responses((status = 201, body = Skill), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn import_skill(
    State(state): State<AppState>,
    AppJson(body): AppJson<SkillImport>,
) -> ApiResult<(StatusCode, Json<Skill>)> {
    Ok((StatusCode::CREATED, Json(import(&state, body).await?)))
}

/// Imports a community skill from a URL, under the private-address guard
/// (REST and dashboard).
pub async fn import(state: &AppState, body: SkillImport) -> ApiResult<Skill> {
    let text = fetch_markdown(&body.url, state.deps.config.http_fetch_allow_private).await?;
    let fields = skill_from_markdown(&text, "community")?;
    let skill = state.deps.store.create_skill(&fields).await.map_err(duplicate_name)?;
    changed(state, skill.id).await;
    Ok(skill)
}

/// Downloads the skill file under [`arvis_shared::net`]'s guard and limits.
async fn fetch_markdown(url: &str, allow_private: bool) -> Result<String, Invalid> {
    check_text("url", url, 2_000)?;
    let limits = FetchLimits {
        timeout: IMPORT_TIMEOUT,
        max_bytes: MAX_CONTENT_BYTES,
        max_redirects: 5,
        allow_private,
        user_agent: concat!("Arvis/", env!("CARGO_PKG_VERSION"), " (skill import)"),
    };
    let fetched = net::fetch(url, &limits).await.map_err(|e| Invalid::new(format!("cannot import the skill: {e}")))?;
    if !fetched.status.is_success() {
        return Err(Invalid::new(format!("cannot import the skill: the server answered {}", fetched.status)));
    }
    if let Some(ct) = &fetched.content_type
        && !is_skill_text(ct)
    {
        return Err(Invalid::new(format!(
            "cannot import the skill: the server answered {ct}, not a markdown or plain-text file"
        )));
    }
    if fetched.truncated {
        return Err(Invalid::new("the skill file is larger than 256 KiB"));
    }
    String::from_utf8(fetched.body).map_err(|_| Invalid::new("the skill file is not UTF-8 text"))
}

/// Content types a skill file comes as: markdown, or plain text (raw files on
/// GitHub and most static hosts), or a generic byte stream.
fn is_skill_text(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/markdown" | "text/x-markdown" | "text/plain" | "application/octet-stream" | "application/markdown"
    )
}
