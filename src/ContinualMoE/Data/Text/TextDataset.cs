namespace ContinualMoE.Data.Text;

/// <summary>One tokenised example: the prompt's ids (instruction and input in the run's prompt format), the expected
/// output's ids (ending with the end-of-sequence id when the tokenizer has one), and the reference text. A generation
/// task's example has its task's <see cref="Metric"/> (scored on a generated answer of at most
/// <see cref="MaxAnswerTokens"/> tokens); a classification example has none (scored by label scoring).</summary>
public sealed record TokenizedText(int[] Prompt, int[] Output, string Reference)
{
    public TextAnswerMetric? Metric { get; init; }
    public int MaxAnswerTokens { get; init; }
}

/// <summary>Whether a generated answer counts as correct for its reference (a task's metric; exact match by default).</summary>
public delegate bool TextAnswerMetric(string answer, string reference);

/// <summary>A labelled dataset of tokenised text (<see cref="ILabelledDataset"/> for text): what a text scenario's tasks
/// hold and <see cref="TextDataLoader"/> batches.</summary>
public interface ITextDataset : ILabelledDataset
{
    TokenizedText GetText(int index);
}

/// <summary>One task's tokenised examples in the scenario's global label space.</summary>
public sealed class TextTaskDataset(string name, IReadOnlyList<string> classNames, IReadOnlyList<TokenizedText> examples, IReadOnlyList<int> labels)
    : ITextDataset
{
    public string Name => name;
    public int Count => examples.Count;
    public IReadOnlyList<string> ClassNames => classNames;

    public int GetLabel(int index)
    {
        this.CheckIndex(index);
        return labels[index];
    }

    public TokenizedText GetText(int index)
    {
        this.CheckIndex(index);
        return examples[index];
    }
}
