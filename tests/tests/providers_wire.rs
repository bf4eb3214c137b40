//! The current models' wire formats against loopback stand-ins, built from the
//! providers' documented requests and responses: GPT-5's parameter refusals
//! and the retry, Claude's thinking blocks and signatures, Gemini's thought
//! signatures, the cached-token counts of each. Provider-level here (no
//! database); the same shapes go through the whole worker in `current_models.rs`.

use std::time::Duration;

use arvis_testkit::mock_llm::{
    GEMINI_SIGNATURE, INPUT_TOKENS, OUTPUT_TOKENS, REDACTED_THINKING, THINKING_SIGNATURE, THINKING_TEXT,
};
use arvis_testkit::{MockLlm, MockReply};
use arvis_worker::llm::{ChatMessage, Effort, LlmRequest, LlmResponse, Role, ToolSpec};
use arvis_worker::providers::{Endpoint, ParamMemory, ProviderError, call};
use secrecy::SecretString;
use serde_json::{Value, json};

fn request(model: &str) -> LlmRequest {
    LlmRequest {
        model: model.into(),
        system: "You are terse.".into(),
        messages: vec![ChatMessage::user("What is 6*7?")],
        tools: vec![ToolSpec {
            name: "calculate".into(),
            description: "Evaluates arithmetic".into(),
            parameters: json!({"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}),
        }],
        max_tokens: 256,
        temperature: 0.2,
        ..Default::default()
    }
}

fn endpoint<'a>(
    provider: &'a str,
    base: &'a str,
    key: &'a SecretString,
    account_id: i64,
    memory: &'a ParamMemory,
) -> Endpoint<'a> {
    Endpoint {
        provider,
        base_url: Some(base),
        api_key: Some(key),
        timeout: Duration::from_secs(5),
        account_id,
        memory: Some(memory),
    }
}

/// The assistant turn of the tool loop, as the runner builds it from a response.
fn assistant_turn(out: &LlmResponse) -> ChatMessage {
    ChatMessage {
        role: Role::Assistant,
        content: out.text.clone().into(),
        tool_calls: out.tool_calls.clone(),
        tool_call_id: None,
        tool_name: None,
        replay: out.replay.clone(),
    }
}

/// OpenAI's documented refusal of a parameter (the error object of a 400).
fn refusal(param: &str, code: &str, message: &str) -> MockReply {
    MockReply::Json {
        status: 400,
        body: json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}),
    }
}

#[tokio::test]
async fn gpt5_gets_max_completion_tokens_no_temperature_and_its_effort() {
    arvis_testkit::init_test_logging();
    let mock = MockLlm::start().await;
    let (client, key, memory) =
        (arvis_worker::http_client().unwrap(), SecretString::from("sk-t".to_string()), ParamMemory::default());
    let base = format!("{}/v1", mock.url);
    mock.push(MockReply::Cached { text: "42".into(), cache_read: 1024, cache_write: 0 });
    let mut req = request("gpt-5-mini");
    req.effort = Some(Effort::Low);
    let out = call(&client, &endpoint("openai", &base, &key, 1, &memory), &req, &mut |_| {}).await.unwrap();
    assert_eq!(out.text, "42");
    // prompt_tokens counts the cached ones; prompt_tokens_details.cached_tokens says how many.
    assert_eq!(
        (out.input_tokens, out.cache_read_tokens, out.output_tokens),
        (INPUT_TOKENS + 1024, 1024, OUTPUT_TOKENS)
    );
    let body = &mock.requests()[0].body;
    assert_eq!(body["max_completion_tokens"], 256);
    assert_eq!(body["reasoning_effort"], "low");
    assert!(body.get("max_tokens").is_none() && body.get("temperature").is_none(), "{body}");
}

#[tokio::test]
async fn a_refused_parameter_is_retried_once_without_it_and_remembered_per_account_and_model() {
    arvis_testkit::init_test_logging();
    let mock = MockLlm::start().await;
    let (client, key, memory) =
        (arvis_worker::http_client().unwrap(), SecretString::from("sk-t".to_string()), ParamMemory::default());
    let base = format!("{}/v1", mock.url);
    // A model behind a custom base URL gets max_tokens + temperature; this one
    // refuses both, as OpenAI's reasoning models do.
    mock.push(refusal(
        "max_tokens",
        "unsupported_parameter",
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
    ));
    mock.push(refusal(
        "temperature",
        "unsupported_value",
        "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported.",
    ));
    mock.push(MockReply::text("fine"));
    let req = request("reasoner-2");
    let out = call(&client, &endpoint("openai", &base, &key, 7, &memory), &req, &mut |_| {}).await.unwrap();
    assert_eq!(out.text, "fine");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!((reqs[0].body["max_tokens"].as_i64(), reqs[0].body["temperature"].as_f64()), (Some(256), Some(0.2)));
    assert_eq!((reqs[1].body["max_completion_tokens"].as_i64(), reqs[1].body.get("max_tokens")), (Some(256), None));
    assert_eq!(reqs[1].body["temperature"], 0.2);
    assert!(reqs[2].body.get("temperature").is_none() && reqs[2].body.get("max_tokens").is_none());

    // The next call of the same (account, model) sends the right thing at once…
    call(&client, &endpoint("openai", &base, &key, 7, &memory), &req, &mut |_| {}).await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 4);
    assert!(reqs[3].body.get("temperature").is_none() && reqs[3].body["max_completion_tokens"] == 256);
    // …another account of the same model learns for itself.
    call(&client, &endpoint("openai", &base, &key, 8, &memory), &req, &mut |_| {}).await.unwrap();
    assert_eq!(mock.requests()[4].body["max_tokens"], 256);

    // Retried once per parameter: a second refusal of the same one is final (permanent).
    let memory = ParamMemory::default();
    for _ in 0..2 {
        mock.push(refusal("temperature", "unsupported_value", "Unsupported value: 'temperature'"));
    }
    let before = mock.request_count();
    let err = call(&client, &endpoint("openai", &base, &key, 9, &memory), &req, &mut |_| {}).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Unsupported { param, .. } if param == "temperature"), "{err:?}");
    assert!(err.is_permanent());
    assert_eq!(mock.request_count() - before, 2);
    // Other 400s are not retried.
    mock.push(MockReply::status(400));
    let before = mock.request_count();
    let err = call(&client, &endpoint("openai", &base, &key, 10, &memory), &req, &mut |_| {}).await.unwrap_err();
    assert!(matches!(err, ProviderError::Http { status: 400, .. }), "{err:?}");
    assert_eq!(mock.request_count() - before, 1);
}

#[tokio::test]
async fn claude_thinking_and_signatures_stay_out_of_the_text_and_go_back_unchanged() {
    arvis_testkit::init_test_logging();
    let mock = MockLlm::start().await;
    let (client, key, memory) =
        (arvis_worker::http_client().unwrap(), SecretString::from("sk-ant".to_string()), ParamMemory::default());
    let ep = endpoint("anthropic", &mock.url, &key, 1, &memory);
    // Round 1: thinking (with a signature_delta), redacted thinking, then tool_use — streamed.
    mock.push(MockReply::thinking_tool("calculate", json!({"expression": "6*7"})));
    let mut req = request("claude-opus-5-5");
    let mut deltas = String::new();
    let out = call(&client, &ep, &req, &mut |d| deltas.push_str(d)).await.unwrap();
    assert_eq!((out.text.as_str(), deltas.as_str()), ("", ""), "thinking never reaches the text");
    assert_eq!(out.thinking, THINKING_TEXT);
    assert_eq!(out.tool_calls[0].arguments, json!({"expression": "6*7"}));
    let first = &mock.requests()[0].body;
    assert_eq!(first["thinking"], json!({"type": "adaptive"}));
    for k in ["temperature", "top_p", "top_k", "tool_choice"] {
        assert!(first.get(k).is_none(), "{k} sent to Opus 5.5: {first}");
    }
    assert_eq!(first["system"][0]["cache_control"], json!({"type": "ephemeral"}));
    assert_eq!(first["tools"][0]["cache_control"], json!({"type": "ephemeral"}));

    // Round 2: the assistant turn goes back block for block, signatures included.
    let call0 = out.tool_calls[0].clone();
    req.messages.push(assistant_turn(&out));
    req.messages.push(ChatMessage::tool_result(&call0, "42"));
    mock.push(MockReply::ThinkingText("It is 42.".into()));
    let mut deltas = String::new();
    let out2 = call(&client, &ep, &req, &mut |d| deltas.push_str(d)).await.unwrap();
    assert_eq!((out2.text.as_str(), deltas.as_str()), ("It is 42.", "It is 42."));
    let second = &mock.requests()[1].body;
    assert_eq!(
        second["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE},
            {"type": "redacted_thinking", "data": REDACTED_THINKING},
            {"type": "tool_use", "id": "toolu_mock", "name": "calculate", "input": {"expression": "6*7"}},
        ]})
    );
    assert_eq!(
        second["messages"][2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_mock", "content": "42"}]})
    );

    // Non-streaming: the documented message object, thinking and all.
    mock.push(MockReply::Json {
        status: 200,
        body: json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-opus-5-5",
            "content": [
                {"type": "thinking", "thinking": "Quick sum.", "signature": "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve"},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
                {"type": "tool_use", "id": "toolu_02", "name": "calculate", "input": {"expression": "1+1"}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 20, "cache_creation_input_tokens": 1500, "cache_read_input_tokens": 0, "output_tokens": 40},
        }),
    });
    let out3 = call(&client, &ep, &request("claude-fable-5-1"), &mut |_| {}).await.unwrap();
    assert_eq!((out3.text.as_str(), out3.thinking.as_str()), ("", "Quick sum."));
    assert_eq!((out3.input_tokens, out3.cache_write_tokens, out3.output_tokens), (1520, 1500, 40));
    let replay = out3.replay.unwrap();
    assert_eq!(replay.content[1], json!({"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}));
}

#[tokio::test]
async fn claude_cache_counts_are_read_from_the_stream() {
    arvis_testkit::init_test_logging();
    let mock = MockLlm::start().await;
    let (client, key, memory) =
        (arvis_worker::http_client().unwrap(), SecretString::from("sk-ant".to_string()), ParamMemory::default());
    mock.push(MockReply::Cached { text: "ok".into(), cache_read: 3000, cache_write: 200 });
    let ep = endpoint("anthropic", &mock.url, &key, 1, &memory);
    let out = call(&client, &ep, &request("claude-haiku-4-5"), &mut |_| {}).await.unwrap();
    assert_eq!(
        (out.input_tokens, out.cache_read_tokens, out.cache_write_tokens, out.output_tokens),
        (INPUT_TOKENS + 3200, 3000, 200, OUTPUT_TOKENS)
    );
}

#[tokio::test]
async fn gemini_signatures_go_back_exactly_as_received() {
    arvis_testkit::init_test_logging();
    let mock = MockLlm::start().await;
    let (client, key, memory) =
        (arvis_worker::http_client().unwrap(), SecretString::from("goog".to_string()), ParamMemory::default());
    let ep = endpoint("google", &mock.url, &key, 1, &memory);
    // Google's documented parallel-call shape: only the first functionCall part
    // carries a signature; streamed text whose last chunk carries another.
    mock.push(MockReply::sse(
        vec![
            (None, json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Checking "}]}}]})),
            (
                None,
                json!({"candidates": [{"content": {"role": "model", "parts": [
                    {"text": "both.", "thoughtSignature": "U2lnVGV4dA=="},
                    {"functionCall": {"name": "calculate", "args": {"expression": "6*7"}}, "thoughtSignature": GEMINI_SIGNATURE},
                    {"functionCall": {"name": "calculate", "args": {"expression": "1+1"}}},
                ]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 900, "cachedContentTokenCount": 800, "candidatesTokenCount": 20, "thoughtsTokenCount": 30}}),
            ),
        ],
        false,
    ));
    let mut req = request("gemini-3.5-flash");
    let out = call(&client, &ep, &req, &mut |_| {}).await.unwrap();
    assert_eq!(out.text, "Checking both.");
    assert_eq!(out.tool_calls.len(), 2);
    assert_eq!((out.input_tokens, out.cache_read_tokens, out.output_tokens), (900, 800, 50), "thoughts are output");
    assert!(mock.requests()[0].body["generationConfig"].get("temperature").is_none(), "Gemini 3 keeps its default");

    let calls = out.tool_calls.clone();
    req.messages.push(assistant_turn(&out));
    req.messages.push(ChatMessage::tool_result(&calls[0], "42"));
    req.messages.push(ChatMessage::tool_result(&calls[1], "2"));
    mock.push(MockReply::ThinkingText("42 and 2".into()));
    let out2 = call(&client, &ep, &req, &mut |_| {}).await.unwrap();
    assert_eq!(out2.text, "42 and 2");
    let contents = mock.requests()[1].body["contents"].clone();
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [
            {"text": "Checking both.", "thoughtSignature": "U2lnVGV4dA=="},
            {"functionCall": {"name": "calculate", "args": {"expression": "6*7"}}, "thoughtSignature": GEMINI_SIGNATURE},
            {"functionCall": {"name": "calculate", "args": {"expression": "1+1"}}},
        ]})
    );
    assert_eq!(contents[2]["parts"].as_array().map(Vec::len), Some(2), "both responses in one user turn");
    // The answer's own signature (streamed on an empty last piece) stays on its text part.
    let replay: &Value = &out2.replay.unwrap().content;
    assert_eq!(replay, &json!([{"text": "42 and 2", "thoughtSignature": GEMINI_SIGNATURE}]));
}
