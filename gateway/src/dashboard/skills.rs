//! Skills: the list (`/skills`, paged, builtin and community), a new skill
//! (`/skills/new`), import from a URL (`/skills/import`), one skill's form
//! (`/skills/{id}`), enable/disable and delete.
//!
//! Writes go through `routes::skills::{create, update, delete, import}`: the
//! same validation (trigger patterns compiled as the worker compiles them),
//! the builtin rule ("builtin skills cannot be deleted; disable them
//! instead") and, for an import, the same download under the private-address
//! guard and size/time limits as `POST /api/skills/import`. Keywords are
//! comma-separated; patterns one per line (a regular expression may hold a
//! comma).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use arvis_shared::domain::skill::{NewSkill, Skill, SkillImport, SkillPatch};

use super::fields::{self, ToggleForm, is_refusal, place};
use super::form::Errors;
use super::layout::{Ctx, NavItem, PageResult, page, page_with_status, see_other};
use super::pager::{PER_PAGE, PageParam, Pager};
use crate::error::ApiError;
use crate::extract::{AppForm, AppPath};
use crate::routes;
use crate::state::AppState;

pub const NAV: NavItem = NavItem { href: "/skills", label: "Skills", ready: true };

const FIELDS: &[&str] =
    &["name", "displayName", "description", "triggerKeywords", "triggerPatterns", "content", "isEnabled"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/skills", get(list))
        .route("/skills/new", get(new_form).post(create))
        .route("/skills/import", post(import))
        .route("/skills/{id}", get(detail).post(update))
        .route("/skills/{id}/enabled", post(set_enabled))
        .route("/skills/{id}/delete", post(delete))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// Comma-separated.
    #[serde(default)]
    pub trigger_keywords: String,
    /// One per line.
    #[serde(default)]
    pub trigger_patterns: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub is_enabled: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    pub url: String,
}

impl SkillForm {
    fn from_skill(s: &Skill) -> SkillForm {
        SkillForm {
            name: s.name.clone(),
            display_name: s.display_name.clone(),
            description: s.description.clone(),
            trigger_keywords: s.trigger_keywords.join(", "),
            trigger_patterns: s.trigger_patterns.join("\n"),
            content: s.content.clone(),
            is_enabled: s.is_enabled.then(|| "on".into()),
        }
    }

    fn keywords(&self) -> Vec<String> {
        self.trigger_keywords.split(',').map(str::trim).filter(|k| !k.is_empty()).map(String::from).collect()
    }

    fn patterns(&self) -> Vec<String> {
        self.trigger_patterns.lines().map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect()
    }

    fn into_new(self) -> NewSkill {
        NewSkill {
            trigger_keywords: Some(self.keywords()),
            trigger_patterns: Some(self.patterns()),
            display_name: fields::non_empty(&self.display_name),
            description: Some(self.description),
            required_tools: None,
            is_enabled: Some(self.is_enabled.is_some()),
            name: self.name.trim().to_string(),
            content: self.content,
        }
    }

    fn into_patch(self) -> SkillPatch {
        SkillPatch {
            trigger_keywords: Some(self.keywords()),
            trigger_patterns: Some(self.patterns()),
            is_enabled: Some(self.is_enabled.is_some()),
            display_name: Some(self.display_name),
            description: Some(self.description),
            content: Some(self.content),
        }
    }
}

async fn list(ctx: Ctx, State(state): State<AppState>, Query(p): Query<PageParam>) -> PageResult {
    render_list(&ctx, &state, p.number(), &ImportForm::default(), &Errors::none(), StatusCode::OK).await
}

async fn render_list(
    ctx: &Ctx,
    state: &AppState,
    page_no: i64,
    import_form: &ImportForm,
    import_errors: &Errors,
    status: StatusCode,
) -> PageResult {
    let store = &state.deps.store;
    let (_, total) = store.skills_page(0, 0).await?;
    let pager = Pager::new(page_no, PER_PAGE, total);
    let (skills, _) = store.skills_page(pager.limit(), pager.offset()).await?;
    page_with_status(
        ctx,
        status,
        "Skills",
        html! {
            p.actions { a href="/skills/new" { "New skill" } }
            form.card.import method="post" action="/skills/import" {
                (import_errors.form_level())
                div.fields {
                    div.field.wide {
                        label for="url" { "Import a skill from a URL" }
                        input #url type="url" name="url" value=(import_form.url) placeholder="https://…/skill.md"
                            aria-invalid=[import_errors.invalid("url")] aria-describedby="url-error";
                        span.hint { "a markdown file with front matter (name, description, keywords, patterns); at most 256 KiB" }
                        (import_errors.field("url"))
                    }
                }
                div.actions { button type="submit" { "Import" } }
            }
            @if skills.is_empty() {
                p.empty { "No skills yet." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th { "Skill" } th { "Name" } th { "Source" } th { "Keywords" } th { "Status" }
                            th { span.visually-hidden { "Actions" } }
                        } }
                        tbody {
                            @for s in &skills {
                                tr {
                                    td { a href={ "/skills/" (s.id) } { (s.display_name) }
                                        @if !s.description.is_empty() { br; span.sub { (s.description) } } }
                                    td { code { (s.name) } }
                                    td { (s.source) }
                                    td.message { (s.trigger_keywords.join(", ")) }
                                    td { (fields::state(s.is_enabled)) }
                                    td.row-actions {
                                        (fields::toggle(&format!("/skills/{}/enabled", s.id), s.is_enabled, &s.display_name))
                                        @if s.source != "builtin" {
                                            (fields::delete(&format!("/skills/{}/delete", s.id), &s.display_name))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                (pager.render("/skills", "page"))
            }
        },
    )
}

async fn new_form(ctx: Ctx) -> PageResult {
    let form = SkillForm { is_enabled: Some("on".into()), ..SkillForm::default() };
    page(&ctx, "New skill", skill_form("/skills/new", &form, true, &Errors::none(), "Create skill"))
}

async fn create(ctx: Ctx, State(state): State<AppState>, AppForm(form): AppForm<SkillForm>) -> PageResult {
    match routes::skills::create(&state, form.clone().into_new()).await {
        Ok(skill) => Ok(see_other(&format!("/skills/{}", skill.id))),
        Err(e) if is_refusal(&e) => page_with_status(
            &ctx,
            e.status,
            "New skill",
            skill_form("/skills/new", &form, true, &place(&e.message, FIELDS), "Create skill"),
        ),
        Err(e) => Err(e.into()),
    }
}

async fn import(ctx: Ctx, State(state): State<AppState>, AppForm(form): AppForm<ImportForm>) -> PageResult {
    match routes::skills::import(&state, SkillImport { url: form.url.trim().to_string() }).await {
        Ok(skill) => Ok(see_other(&format!("/skills/{}", skill.id))),
        // The form has one field: every refusal (a refused address, a
        // download that failed, a bad file, a duplicate name) is about it.
        Err(e) if is_refusal(&e) => {
            render_list(&ctx, &state, 1, &form, &Errors::on("url", e.message.clone()), e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn load(state: &AppState, id: i64) -> Result<Skill, ApiError> {
    state.deps.store.get_skill(id).await?.ok_or_else(|| ApiError::not_found("skill not found"))
}

async fn detail(ctx: Ctx, State(state): State<AppState>, AppPath(id): AppPath<i64>) -> PageResult {
    let s = load(&state, id).await?;
    render_detail(&ctx, &s, &SkillForm::from_skill(&s), &Errors::none(), &Errors::none(), StatusCode::OK)
}

fn render_detail(
    ctx: &Ctx,
    s: &Skill,
    form: &SkillForm,
    errors: &Errors,
    delete_errors: &Errors,
    status: StatusCode,
) -> PageResult {
    let base = format!("/skills/{}", s.id);
    page_with_status(
        ctx,
        status,
        &s.display_name,
        html! {
            p.actions { a href="/skills" { "← All skills" } }
            dl.facts {
                div { dt { "Name" } dd { code { (s.name) } } }
                div { dt { "Source" } dd { (s.source) } }
                div { dt { "Status" } dd { (fields::state(s.is_enabled)) } }
                @if !s.required_tools.is_empty() {
                    div { dt { "Tools" } dd { (s.required_tools.join(", ")) } }
                }
            }
            h2 { "Settings" }
            (skill_form(&base, form, false, errors, "Save changes"))
            h2 { "Delete" }
            @if s.source == "builtin" {
                (delete_errors.form_level())
                p.notice { "A builtin skill cannot be deleted; disable it instead." }
            } @else {
                form.card method="post" action={ (base) "/delete" } data-confirm={ "Delete the skill " (s.display_name) "?" } {
                    (delete_errors.form_level())
                    button.danger type="submit" { "Delete skill" }
                }
            }
        },
    )
}

async fn update(
    ctx: Ctx,
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(form): AppForm<SkillForm>,
) -> PageResult {
    let s = load(&state, id).await?;
    match routes::skills::update(&state, id, form.clone().into_patch()).await {
        Ok(_) => Ok(see_other(&format!("/skills/{id}"))),
        Err(e) if is_refusal(&e) => {
            // The name is not editable: keep the stored one in the form.
            let form = SkillForm { name: s.name.clone(), ..form };
            render_detail(&ctx, &s, &form, &place(&e.message, FIELDS), &Errors::none(), e.status)
        }
        Err(e) => Err(e.into()),
    }
}

async fn set_enabled(
    State(state): State<AppState>,
    AppPath(id): AppPath<i64>,
    AppForm(t): AppForm<ToggleForm>,
) -> PageResult {
    let patch = SkillPatch { is_enabled: Some(t.enabled()), ..SkillPatch::default() };
    routes::skills::update(&state, id, patch).await?;
    Ok(see_other("/skills"))
}

async fn delete(ctx: Ctx, State(state): State<AppState>, AppPath(id): AppPath<i64>) -> PageResult {
    match routes::skills::delete(&state, id).await {
        Ok(()) => Ok(see_other("/skills")),
        // A builtin skill: the API's message on the skill's page.
        Err(e) if is_refusal(&e) => {
            let s = load(&state, id).await?;
            let errors = Errors::from_message(&e.message, &[]);
            render_detail(&ctx, &s, &SkillForm::from_skill(&s), &Errors::none(), &errors, e.status)
        }
        Err(e) => Err(e.into()),
    }
}

fn skill_form(action: &str, f: &SkillForm, new: bool, errors: &Errors, submit: &str) -> Markup {
    html! {
        form.card method="post" action=(action) {
            (errors.form_level())
            div.fields {
                @if new {
                    (fields::text(errors, "name", "Name", &f.name, Some("a-z, 0-9, - and _; unique")))
                }
                (fields::text(errors, "displayName", "Display name", &f.display_name, new.then_some("empty: the name")))
                div.field.wide {
                    label for="description" { "Description" }
                    input #description type="text" name="description" value=(f.description)
                        aria-invalid=[errors.invalid("description")] aria-describedby="description-error";
                    (errors.field("description"))
                }
                (fields::text(errors, "triggerKeywords", "Trigger keywords", &f.trigger_keywords, Some("comma-separated")))
                (fields::textarea(errors, "triggerPatterns", "Trigger patterns", &f.trigger_patterns, 3,
                    Some("regular expressions, one per line")))
                (fields::textarea(errors, "content", "Instructions (markdown)", &f.content, 12, None))
                (fields::check(errors, "isEnabled", "Enabled", f.is_enabled.is_some()))
            }
            div.actions { button type="submit" { (submit) } }
        }
    }
}
