using ContinualMoE.Backbones.Language;

namespace ContinualMoE.Data.Text;

/// <summary>
/// Turns <see cref="TextExample"/>s into token ids for a model's tokenizer (docs/text-tasks.md).
/// <list type="bullet">
/// <item><c>plain</c> (default): the prompt text is <c>{instruction}\n{input}\nAnswer:</c> (the input line is left out
/// when empty), encoded with the tokenizer's own BOS rule; the output is <c>" " + output</c>, encoded without BOS, then
/// the EOS id. This is the instruction/answer layout of O-LoRA's and TRACE's prompts, without their dataset-specific
/// wording.</item>
/// <item><c>chat</c>: the folder's chat template renders one user message <c>{instruction}\n{input}</c> with the
/// assistant's turn opener; the output is <c>output</c> then EOS.</item>
/// </list>
/// A label's ids are exactly the ids a training example with that label text has as its output, so label scoring
/// scores what training taught. Prompts longer than <see cref="MaxPromptTokens"/> keep their last tokens (the input's
/// end and the answer cue).
/// </summary>
public sealed class TextPromptFormat
{
    public const string Plain = "plain";
    public const string Chat = "chat";

    private readonly LanguageModelTokenizer tokenizer;

    public TextPromptFormat(LanguageModelTokenizer tokenizer, string format = Plain, int maxPromptTokens = 256, int maxOutputTokens = 64)
    {
        if (format is not (Plain or Chat)) throw new ContinualMoEException($"prompt_format must be {Plain} or {Chat}, got '{format}'");
        if (format == Chat && tokenizer.ChatTemplateText is null)
            throw new ContinualMoEException("prompt_format chat: the model folder's tokenizer has no chat template; use prompt_format plain");
        if (maxPromptTokens < 1 || maxOutputTokens < 1) throw new ContinualMoEException("max prompt and output tokens must be at least 1");
        this.tokenizer = tokenizer;
        Format = format;
        MaxPromptTokens = maxPromptTokens;
        MaxOutputTokens = maxOutputTokens;
    }

    public string Format { get; }
    public int MaxPromptTokens { get; }
    public int MaxOutputTokens { get; }
    public int? EndOfSequenceId => tokenizer.EosId;
    public LanguageModelTokenizer Tokenizer => tokenizer;

    public string PromptText(TextExample example)
    {
        var user = example.Input.Length == 0 ? example.Instruction : $"{example.Instruction}\n{example.Input}";
        return Format == Chat ? tokenizer.ApplyChatTemplate([new ChatMessage("user", user)]) : $"{user}\nAnswer:";
    }

    public int[] PromptIds(TextExample example)
    {
        var ids = Format == Chat ? tokenizer.Encode(PromptText(example), addBos: false) : tokenizer.Encode(PromptText(example));
        return ids.Count <= MaxPromptTokens ? [.. ids] : [.. ids.Skip(ids.Count - MaxPromptTokens)];
    }

    /// <summary>The ids a model should produce for <paramref name="output"/> (the training targets and a label's scored ids).</summary>
    public int[] OutputIds(string output)
    {
        var ids = tokenizer.Encode(Format == Chat ? output : " " + output, addBos: false).Take(MaxOutputTokens).ToList();
        if (tokenizer.EosId is int eos) ids.Add(eos);
        if (ids.Count == 0) throw new ContinualMoEException($"output '{output}' encodes to no tokens and the tokenizer has no EOS token");
        return [.. ids];
    }

    /// <summary>The answer text of generated ids (up to EOS).</summary>
    public string Answer(IEnumerable<long> generated)
    {
        var ids = generated.TakeWhile(id => tokenizer.EosId is not int eos || id != eos).Select(id => (int)id);
        return tokenizer.Decode(ids);
    }

    public TokenizedText Encode(TextExample example) => new(PromptIds(example), OutputIds(example.Output), example.Output) { Source = example.Input };
}
