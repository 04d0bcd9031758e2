using System.Text.Json;
using System.Text.Json.Serialization;

namespace ContinualMoE.Cli.Reporting;

/// <summary>JSON settings shared by every results file, so names look the same everywhere (snake_case, like the CSV).</summary>
internal static class ReportJson
{
    /// <summary>For whole files: indented for people reading them.</summary>
    public static readonly JsonSerializerOptions Indented = Create(indented: true);

    /// <summary>For JSON lines: one object per line.</summary>
    public static readonly JsonSerializerOptions Compact = Create(indented: false);

    private static JsonSerializerOptions Create(bool indented) => new()
    {
        WriteIndented = indented,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        // A diverged epoch (NaN loss) must still be logged rather than crash the logger; it is written as "NaN".
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}
