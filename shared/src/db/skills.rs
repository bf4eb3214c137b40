//! Skills (builtin and community).

use super::{DbError, Flag, Result, Store, classify, from_json, sql, to_json};
use crate::clock::now_ms;
use crate::domain::skill::{BUILTIN_SKILLS, Skill, SkillFields, skill_from_markdown};

any_row! {
    struct SkillRow {
        id: i64,
        name: String,
        display_name: String,
        description: String,
        content: String,
        trigger_keywords: String,
        trigger_patterns: String,
        required_tools: String,
        is_enabled: Flag,
        source: String,
    }
}

impl TryFrom<SkillRow> for Skill {
    type Error = DbError;
    fn try_from(r: SkillRow) -> Result<Skill> {
        Ok(Skill {
            trigger_keywords: from_json("skills.trigger_keywords", &r.trigger_keywords)?,
            trigger_patterns: from_json("skills.trigger_patterns", &r.trigger_patterns)?,
            required_tools: from_json("skills.required_tools", &r.required_tools)?,
            id: r.id,
            name: r.name,
            display_name: r.display_name,
            description: r.description,
            content: r.content,
            is_enabled: r.is_enabled.0,
            source: r.source,
        })
    }
}

const SKILL_COLUMNS: &str = "id, name, display_name, description, content, trigger_keywords, trigger_patterns, \
                             required_tools, is_enabled, source";

impl Store {
    pub async fn list_skills(&self) -> Result<Vec<Skill>> {
        let rows: Vec<SkillRow> = sqlx::query_as(sql(format!("SELECT {SKILL_COLUMNS} FROM skills ORDER BY name")))
            .fetch_all(self.r())
            .await?;
        rows.into_iter().map(Skill::try_from).collect()
    }

    pub async fn get_skill(&self, id: i64) -> Result<Option<Skill>> {
        let row: Option<SkillRow> = sqlx::query_as(sql(format!("SELECT {SKILL_COLUMNS} FROM skills WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.r())
            .await?;
        row.map(Skill::try_from).transpose()
    }

    /// Inserts a skill; a duplicate name is [`DbError::Conflict`].
    pub async fn create_skill(&self, f: &SkillFields) -> Result<Skill> {
        let row = sqlx::query_as::<_, SkillRow>(sql(format!(
            "INSERT INTO skills (name, display_name, description, category, content, trigger_keywords, \
             trigger_patterns, required_tools, is_enabled, source, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {SKILL_COLUMNS}"
        )))
        .bind(&f.name)
        .bind(&f.display_name)
        .bind(&f.description)
        .bind(&f.category)
        .bind(&f.content)
        .bind(to_json(&f.trigger_keywords))
        .bind(to_json(&f.trigger_patterns))
        .bind(to_json(&f.required_tools))
        .bind(f.is_enabled)
        .bind(&f.source)
        .bind(now_ms())
        .fetch_one(self.w())
        .await;
        self.skills.invalidate();
        row.map_err(classify)?.try_into()
    }

    /// Writes the editable fields; `None` when there is no such skill.
    pub async fn update_skill(&self, id: i64, f: &SkillFields) -> Result<Option<Skill>> {
        let row = sqlx::query_as::<_, SkillRow>(sql(format!(
            "UPDATE skills SET display_name = $1, description = $2, content = $3, trigger_keywords = $4, \
             trigger_patterns = $5, is_enabled = $6, updated_at = $7 WHERE id = $8 RETURNING {SKILL_COLUMNS}"
        )))
        .bind(&f.display_name)
        .bind(&f.description)
        .bind(&f.content)
        .bind(to_json(&f.trigger_keywords))
        .bind(to_json(&f.trigger_patterns))
        .bind(f.is_enabled)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(self.w())
        .await;
        self.skills.invalidate();
        row.map_err(classify)?.map(Skill::try_from).transpose()
    }

    /// Deletes a community skill. Builtins stay: returns
    /// [`SkillDelete::Builtin`] for them.
    pub async fn delete_skill(&self, id: i64) -> Result<SkillDelete> {
        let done =
            sqlx::query("DELETE FROM skills WHERE id = $1 AND source <> 'builtin'").bind(id).execute(self.w()).await;
        self.skills.invalidate();
        let done = done?;
        if done.rows_affected() > 0 {
            return Ok(SkillDelete::Deleted);
        }
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT id FROM skills WHERE id = $1").bind(id).fetch_optional(self.w()).await?;
        Ok(if exists.is_some() { SkillDelete::Builtin } else { SkillDelete::NotFound })
    }

    /// Installs or refreshes the builtin skills shipped with the binary. A
    /// builtin keeps its enabled flag; a community skill with the same name is
    /// left alone. Safe when several processes start at once.
    pub async fn upsert_builtin_skills(&self) -> Result<()> {
        let now = now_ms();
        for text in BUILTIN_SKILLS {
            let f =
                skill_from_markdown(text, "builtin").map_err(|e| DbError::Corrupt(format!("builtin skill: {e}")))?;
            let done = sqlx::query(
                "INSERT INTO skills (name, display_name, description, category, content, trigger_keywords, \
                 trigger_patterns, required_tools, is_enabled, source, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'builtin', $10, $10) \
                 ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name, \
                 description = excluded.description, category = excluded.category, content = excluded.content, \
                 trigger_keywords = excluded.trigger_keywords, trigger_patterns = excluded.trigger_patterns, \
                 required_tools = excluded.required_tools, updated_at = excluded.updated_at \
                 WHERE skills.source = 'builtin'",
            )
            .bind(&f.name)
            .bind(&f.display_name)
            .bind(&f.description)
            .bind(&f.category)
            .bind(&f.content)
            .bind(to_json(&f.trigger_keywords))
            .bind(to_json(&f.trigger_patterns))
            .bind(to_json(&f.required_tools))
            .bind(true)
            .bind(now)
            .execute(self.w())
            .await;
            self.skills.invalidate();
            done.map_err(classify)?;
        }
        Ok(())
    }
}

/// What [`Store::delete_skill`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkillDelete {
    Deleted,
    Builtin,
    NotFound,
}
