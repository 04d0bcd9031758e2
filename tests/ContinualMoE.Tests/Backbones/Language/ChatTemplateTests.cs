using ContinualMoE.Backbones.Language;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>Chat templates (Jinja subset with transformers' trim_blocks and lstrip_blocks), with outputs worked out by hand.</summary>
public class ChatTemplateTests
{
    private static readonly ChatMessage[] Conversation =
    [
        new("system", " Be brief. "), new("user", "Hi "), new("assistant", "Hello"), new("user", "Bye"),
    ];

    /// <summary>A template in the style of recent LLaMA ones: namespace, slicing, filters, string methods, loop
    /// variables, a raised exception, and both '-' whitespace control and plain block lines.</summary>
    private static readonly string Structured = string.Join("\n",
        "{{- bos_token }}",
        "{%- set ns = namespace(system='') %}",
        "{%- if messages[0]['role'] == 'system' %}",
        "    {%- set ns.system = messages[0]['content'] | trim %}",
        "    {%- set messages = messages[1:] %}",
        "{%- endif %}",
        "{%- if ns.system %}",
        "{{- '<|sys|>' + ns.system + eos_token }}",
        "{%- endif %}",
        "{% if messages | length > 2 %}",
        "long conversation",
        "{% endif %}",
        "{%- for message in messages %}",
        "    {%- if message.role not in ['user', 'assistant'] %}",
        "        {{- raise_exception('unknown role ' + message.role) }}",
        "    {%- endif %}",
        "    {{- '<|' + message.role + '|>\\n' + message.content.strip() + eos_token }}",
        "    {%- if loop.last and add_generation_prompt %}",
        "        {{- '<|assistant|>\\n' }}",
        "    {%- endif %}",
        "{%- endfor %}");

    private static readonly Dictionary<string, string?> Tokens = new() { ["bos_token"] = "<s>", ["eos_token"] = "</s>" };

    [Fact]
    public void RendersAStructuredTemplateWithWhitespaceControl()
    {
        var template = ChatTemplate.Parse(Structured, "tokenizer_config.json");
        Assert.Equal("<s><|sys|>Be brief.</s>long conversation\n<|user|>\nHi</s><|assistant|>\nHello</s><|user|>\nBye</s><|assistant|>\n",
            template.Render(Conversation, addGenerationPrompt: true, Tokens));
        Assert.Equal("<s><|user|>\nBye</s>", template.Render([new ChatMessage("user", "Bye")], addGenerationPrompt: false, Tokens));
    }

    [Fact]
    public void RaisedExceptionsAndUnsupportedSyntaxAreOneLineErrorsNamingTheFile()
    {
        var template = ChatTemplate.Parse(Structured, "model/tokenizer_config.json");
        var raised = Assert.Throws<ContinualMoEException>(() => template.Render([new ChatMessage("tool", "x")], true, Tokens));
        Assert.StartsWith("model/tokenizer_config.json: chat template", raised.Message);
        Assert.Contains("unknown role tool", raised.Message);
        var macro = Assert.Throws<ContinualMoEException>(() => ChatTemplate.Parse("{% macro f() %}x{% endmacro %}", "t.json"));
        Assert.Contains("unsupported statement", macro.Message);
        var unclosed = Assert.Throws<ContinualMoEException>(() => ChatTemplate.Parse("{% for m in messages %}x", "t.json"));
        Assert.Contains("missing {% endfor %}", unclosed.Message);
    }

    [Fact]
    public void TheTokenizerAppliesTheFolderTemplateAndSpecialTokensEncodeToSingleIds()
    {
        var tokenizer = LanguageModelTokenizer.Load(Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", "qwen_tokenizer_json"));
        var prompt = tokenizer.ApplyChatTemplate([new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hi")]);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", prompt);
        var ids = tokenizer.Encode(prompt);
        Assert.Equal(5, ids.Count(id => id == tokenizer.SpecialTokens["<|im_start|>"] || id == tokenizer.SpecialTokens["<|im_end|>"]));
        Assert.Equal(prompt, tokenizer.Decode(ids));

        var noTemplate = LanguageModelTokenizer.Load(Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", "gpt2_vocab_merges"));
        Assert.Contains("has no chat_template", Assert.Throws<ContinualMoEException>(() => noTemplate.ApplyChatTemplate([new ChatMessage("user", "x")])).Message);
    }
}
